// API error codes → a message in the inspector's language.
//
// The sidecar answers `{"error": {"code", "message", "detail"}}` with a stable code; its message
// is English and for logs. What the inspector reads comes from here, with the details (unlock
// time, product code, attempts left) filled in.
import { ApiError, isApiError } from '../api/client';
import { formatTime, isMessageKey as isKey, translate, type Lang, type MessageKey } from './translate';

type Detail = Record<string, unknown>;

function detailOf(err: ApiError): Detail {
  const d = err.detail;
  return d && typeof d === 'object' && !Array.isArray(d) ? (d as Detail) : {};
}

const SIMPLE: Record<string, MessageKey> = {
  qr_decode_failed: 'err.qr_decode_failed',
  qr_payload_invalid: 'err.qr_payload_invalid',
  item_required: 'err.item_required',
  no_items: 'err.no_items',
  no_image: 'err.no_image',
  sidecar_unreachable: 'err.sidecar_unreachable',
  timeout: 'err.timeout',
  login_required: 'err.login_required',
  signature_required: 'err.signature_required',
  login_invalid: 'err.login_invalid',
  login_expired: 'err.login_invalid',
  unauthorized: 'err.unauthorized',
  forbidden_role: 'err.forbidden_role',
  calibration_invalid: 'err.calibration_invalid',
  not_your_inspection: 'err.not_yours',
  not_your_job: 'err.not_yours',
  not_your_inspections: 'err.not_yours',
  device_token_refused: 'err.device_token_refused',
  insecure_url: 'err.insecure_url',
  pin_invalid: 'err.pin_invalid',
  tls_pin_mismatch: 'err.tls_pin_mismatch',
  tls_expired: 'err.tls_expired',
  tls_untrusted: 'err.tls_untrusted',
  tls_hostname: 'err.tls_hostname',
  tls_failed: 'err.tls_failed',
  host_not_allowed: 'err.unauthorized',
  invalid_input: 'err.invalid_input',
  not_found: 'err.not_found',
  conflict: 'err.conflict',
  stale_version: 'err.conflict',
  pipeline_error: 'err.pipeline_error',
  internal_error: 'err.internal_error',
  bad_response: 'err.bad_response',
  setup_done: 'err.setup_done',
  enrollment_code_invalid: 'err.enrollment_code_invalid',
  enrollment_code_used: 'err.enrollment_code_used',
  enrollment_code_expired: 'err.enrollment_code_expired',
  enrollment_code_malformed: 'err.enrollment_code_malformed',
  enrollment_throttled: 'err.enrollment_throttled',
  not_enrollment_qr: 'err.not_enrollment_qr',
  server_unreachable: 'err.server_unreachable',
  password_rules: 'err.password_rules',
  login_busy: 'err.login_busy',
  already_resolved: 'err.already_resolved',
  not_resolvable: 'err.not_resolvable',
  refusal_not_found: 'err.refusal_not_found',
  sync_disabled: 'err.sync_disabled',
  not_completed: 'err.not_completed',
  not_verified: 'err.not_verified',
  too_many_attempts: 'err.too_many_attempts',
  user_exists: 'err.user_exists',
  timezone_unknown: 'err.timezone_unknown',
  photo_unreadable: 'err.photo_unreadable',
  photo_missing: 'err.photo_missing',
  forbidden: 'err.forbidden_role',
  unprocessable: 'err.invalid_input',
  pipeline_step_failed: 'err.pipeline_error',
  criteria_invalid: 'err.criteria_invalid',
  set_aside_not_found: 'err.set_aside_not_found',
  refused_by_server: 'err.refused_by_server',
};

/** For a code this UI has no words of its own for (a newer sidecar's), what its status says. */
const BY_STATUS: Record<number, MessageKey> = {
  403: 'err.forbidden_role',
  404: 'err.not_found',
  409: 'err.conflict',
  422: 'err.invalid_input',
  429: 'err.too_many_attempts',
};

// A photo the tablet cannot open, by the sidecar's reason.
const PHOTO_REASONS: Record<string, MessageKey> = {
  missing: 'err.photo_missing',
  damaged: 'err.photo_damaged',
  truncated: 'err.photo_damaged',
  no_key: 'err.photo_key',
  wrong_key: 'err.photo_key',
  unknown_format: 'err.photo_newer',
};

/** Codes that mean "no AI on this tablet for this item": the inspector judges by eye. */
export const AI_UNAVAILABLE_CODES = new Set([
  'not_found', // the analyse endpoint itself is missing (an older sidecar)
  'method_not_allowed',
  'no_pipeline',
  'pipeline_missing',
  'model_unavailable',
  'model_corrupt',
  'model_incompatible', // exported for a newer ONNX Runtime than this tablet's
  'pipeline_definition_invalid',
  'ai_disabled',
]);

/** Why the connection to the server is refused (sync.device.transit): the same codes a connect
 * answers with and a failed sync run records as its kind. */
const TRANSIT_CODES = new Set([
  'insecure_url',
  'tls_pin_mismatch',
  'tls_expired',
  'tls_untrusted',
  'tls_hostname',
  'tls_failed',
]);

/** A failed sync run in words: a refused connection in the tablet's language (someone has to act
 * on it), anything else as the sidecar recorded it. */
export function syncErrorText(kind: string | null | undefined, message: string, lang: Lang): string {
  return kind && TRANSIT_CODES.has(kind) ? translate(lang, SIMPLE[kind] as MessageKey) : message;
}

export function errorCode(err: unknown): string {
  if (isApiError(err)) return err.code;
  return 'unknown';
}

export function errorMessage(err: unknown, lang: Lang, now = new Date()): string {
  if (!isApiError(err)) {
    return translate(lang, 'err.unknown', { code: err instanceof Error ? err.message : String(err) });
  }
  const detail = detailOf(err);
  switch (err.code) {
    case 'bad_credentials': {
      const left = detail.attempts_left;
      return typeof left === 'number' && left > 0 && left < 5
        ? translate(lang, 'err.bad_credentials_left', { n: left })
        : translate(lang, 'err.bad_credentials');
    }
    case 'signature_invalid': {
      const left = detail.attempts_left;
      return typeof left === 'number' && left > 0 && left < 5
        ? translate(lang, 'err.signature_invalid_left', { n: left })
        : translate(lang, 'err.signature_invalid');
    }
    case 'account_locked': {
      const until = detail.locked_until;
      return typeof until === 'string' && !Number.isNaN(new Date(until).getTime())
        ? translate(lang, 'err.account_locked', { time: formatTime(lang, until, now) })
        : translate(lang, 'err.account_locked_plain');
    }
    case 'product_not_found': {
      const product = detail.product_code;
      return typeof product === 'string' && product
        ? translate(lang, 'err.product_not_found', { product })
        : translate(lang, 'err.product_not_found_plain');
    }
    case 'image_invalid': {
      if (detail.reason === 'truncated') return translate(lang, 'err.image_truncated');
      if (detail.reason === 'empty') return translate(lang, 'err.image_empty');
      return translate(lang, 'err.image_invalid');
    }
    case 'payload_too_large': {
      const size = detail.size;
      return typeof size === 'number'
        ? translate(lang, 'err.payload_too_large', { size: (size / 1e6).toFixed(1) })
        : translate(lang, 'err.payload_too_large_plain');
    }
    case 'illegal_transition': {
      const state = typeof detail.state === 'string' ? detail.state : '?';
      const known = `sstatus.${state}`;
      const istate = `istatus.${state}`;
      const label = isKey(known) ? translate(lang, known) : isKey(istate) ? translate(lang, istate) : state;
      return translate(lang, 'err.illegal_transition', { state: label });
    }
    case 'items_open': {
      const items = Array.isArray(detail.items) ? detail.items.join(', ') : '';
      return translate(lang, 'err.items_open', { items });
    }
    case 'photo_unreadable': {
      const reason = typeof detail.reason === 'string' ? PHOTO_REASONS[detail.reason] : undefined;
      return translate(lang, reason ?? 'err.photo_unreadable');
    }
    case 'validation_error': {
      const fields = Array.isArray(err.detail)
        ? (err.detail as { field?: unknown }[])
            .map((f) => String(f.field ?? ''))
            .filter(Boolean)
            .join(', ')
        : '';
      return translate(lang, 'err.validation_error', { fields });
    }
    default:
      if (AI_UNAVAILABLE_CODES.has(err.code) && err.code !== 'not_found') {
        return translate(lang, 'item.aiUnavailable');
      }
      if (err.code in SIMPLE) return translate(lang, SIMPLE[err.code] as MessageKey);
      if (err.status in BY_STATUS) return translate(lang, BY_STATUS[err.status] as MessageKey);
      return translate(lang, 'err.unknown', { code: err.code });
  }
}
