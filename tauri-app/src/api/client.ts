// A thin typed client for the sidecar's HTTP API.
//
// Paths, parameters, bodies and responses come from `schema.d.ts`, which `npm run gen:api`
// generates from the sidecar's own OpenAPI document (and `npm run check:api` keeps in sync).
// Every failure becomes an `ApiError` with the API's stable `code`, so the UI can say what went
// wrong in the inspector's language (see `i18n/errors.ts`); a sidecar that does not answer is
// `sidecar_unreachable`, never an unhandled rejection or a blank screen.
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type Method = 'get' | 'post' | 'put' | 'delete';

type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;

/** The API paths that have an operation for method `M`. */
export type PathFor<M extends Method> = {
  [P in keyof paths]: [Op<P, M>] extends [never] ? never : P;
}[keyof paths];

type Json<T> = T extends { content: { 'application/json': infer J } } ? J : unknown;
type Success<R> = 200 extends keyof R
  ? Json<R[200]>
  : 201 extends keyof R
    ? Json<R[201]>
    : 202 extends keyof R
      ? Json<R[202]>
      : 204 extends keyof R
        ? void
        : unknown;

export type Result<P extends keyof paths, M extends Method> = Success<Op<P, M>['responses']>;

export interface RequestOptions<O> {
  path?: O extends { parameters: { path: infer PP } } ? PP : never;
  query?: O extends { parameters: { query?: infer Q } } ? Q : never;
  // A body the operation declares optional (`requestBody?`) may be sent too.
  json?: O extends { requestBody?: infer R }
    ? NonNullable<R> extends { content: { 'application/json': infer B } }
      ? B
      : never
    : never;
  /** A raw body (a photo as multipart form data or as a Blob). */
  body?: FormData | Blob;
  signal?: AbortSignal;
  /** Milliseconds before the call is given up as `timeout` (default: 20 s, uploads 120 s). */
  timeoutMs?: number;
}

/** Client-side failure codes, beside the API's own (`bad_credentials`, `product_not_found`…). */
export const UNREACHABLE = 'sidecar_unreachable';
export const TIMEOUT = 'timeout';
export const BAD_RESPONSE = 'bad_response';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: unknown;

  constructor(status: number, code: string, message: string, detail: unknown = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }

  /** True when the sidecar could not be reached at all (process gone, port closed). */
  get isNetwork(): boolean {
    return this.code === UNREACHABLE || this.code === TIMEOUT;
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}

export interface ClientConfig {
  baseUrl: string;
  token: string;
  fetch?: typeof fetch;
  /** The login token for `X-Kensa-Session`, read on every call (null before login). */
  session?: () => string | null;
  /**
   * This install's id, sent as `X-Kensa-Client`: the sidecar locks a user out per client after
   * failed logins, so someone guessing elsewhere cannot lock the inspector out of this tablet.
   */
  clientId?: string;
  /** Told after each call whether the sidecar answered (drives the "connection lost" banner). */
  onReachability?: (reachable: boolean) => void;
  /** Told when the login is missing or no longer valid (the UI goes back to the login screen). */
  onLoginInvalid?: (code: string) => void;
}

const LOGIN_CODES = new Set(['login_required', 'login_invalid', 'login_expired']);
const DEFAULT_TIMEOUT_MS = 20_000;
const UPLOAD_TIMEOUT_MS = 120_000;

/** Largest photo the sidecar takes (sidecar/services/images.py MAX_IMAGE_BYTES). */
export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

export function buildPath(template: string, params: Record<string, unknown> | undefined): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params?.[name];
    if (value === undefined || value === null) {
      throw new Error(`missing path parameter ${name} for ${template}`);
    }
    return encodeURIComponent(String(value));
  });
}

export function buildQuery(query: Record<string, unknown> | undefined): string {
  if (!query) return '';
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function errorFrom(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // A proxy's HTML page or an empty body: keep the status, name no code the API did not send.
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; detail?: unknown } } | null)
    ?.error;
  if (error && typeof error.code === 'string') {
    return new ApiError(
      response.status,
      error.code,
      typeof error.message === 'string' ? error.message : response.statusText,
      error.detail ?? null,
    );
  }
  const fallback = response.status === 404 ? 'not_found' : `http_${response.status}`;
  return new ApiError(response.status, fallback, response.statusText || fallback);
}

export class ApiClient {
  readonly baseUrl: string;
  readonly token: string;
  private readonly fetchImpl: typeof fetch;
  private readonly config: ClientConfig;

  constructor(config: ClientConfig) {
    this.baseUrl = config.baseUrl.replace(/\/+$/, '');
    this.token = config.token;
    this.fetchImpl = config.fetch ?? globalThis.fetch.bind(globalThis);
    this.config = config;
  }

  /**
   * A URL that opens the server-sent events once. EventSource cannot send headers, and the launch
   * token must not sit in a URL (history, logs): it goes in the header of the request for a
   * single-use ticket that expires in seconds, and the URL carries only that ticket.
   */
  async eventsUrl(): Promise<string> {
    const { ticket } = await this.post('/events/ticket');
    return `${this.baseUrl}/events?ticket=${encodeURIComponent(ticket)}`;
  }

  get<P extends PathFor<'get'>>(path: P, options?: RequestOptions<Op<P, 'get'>>) {
    return this.request<P, 'get'>('get', path, options);
  }

  post<P extends PathFor<'post'>>(path: P, options?: RequestOptions<Op<P, 'post'>>) {
    return this.request<P, 'post'>('post', path, options);
  }

  async request<P extends keyof paths, M extends Method>(
    method: M,
    path: P,
    options: RequestOptions<Op<P, M>> = {},
  ): Promise<Result<P, M>> {
    const url =
      buildPath(path as string, options.path as Record<string, unknown> | undefined) +
      buildQuery(options.query as Record<string, unknown> | undefined);
    const response = await this.send(method, url, options);
    if (response.status === 204) return undefined as Result<P, M>;
    try {
      return (await response.json()) as Result<P, M>;
    } catch {
      throw new ApiError(response.status, BAD_RESPONSE, 'the sidecar sent a response kensa cannot read');
    }
  }

  /** Binary content (a stored photo) as a Blob. */
  async blob(path: string): Promise<Blob> {
    const response = await this.send('get', path, {});
    return response.blob();
  }

  private async send(
    method: Method,
    url: string,
    options: { json?: unknown; body?: FormData | Blob; signal?: AbortSignal; timeoutMs?: number },
  ): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    const login = this.config.session?.();
    if (login) headers['X-Kensa-Session'] = login;
    if (this.config.clientId) headers['X-Kensa-Client'] = this.config.clientId;
    let body: BodyInit | undefined;
    if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      body = options.body;
      if (options.body instanceof Blob && !(options.body instanceof File) && options.body.type) {
        headers['Content-Type'] = options.body.type;
      }
    }
    const timeout = options.timeoutMs ?? (options.body ? UPLOAD_TIMEOUT_MS : DEFAULT_TIMEOUT_MS);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    const outer = options.signal;
    const onOuterAbort = () => controller.abort();
    outer?.addEventListener('abort', onOuterAbort);
    let response: Response;
    try {
      response = await this.fetchImpl(this.baseUrl + url, {
        method: method.toUpperCase(),
        headers,
        body,
        signal: controller.signal,
      });
    } catch (err) {
      if (outer?.aborted) throw err;
      this.config.onReachability?.(false);
      if (timedOut) {
        throw new ApiError(0, TIMEOUT, `the sidecar did not answer within ${timeout / 1000} s`);
      }
      throw new ApiError(0, UNREACHABLE, `the sidecar cannot be reached: ${String(err)}`);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuterAbort);
    }
    this.config.onReachability?.(true);
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401 && LOGIN_CODES.has(error.code)) {
        this.config.onLoginInvalid?.(error.code);
      }
      throw error;
    }
    return response;
  }
}

const CLIENT_ID_KEY = 'kensa.client-id';
const CLIENT_ID = /^[A-Za-z0-9_-]{8,64}$/;

/**
 * The id of this install of the UI: made once, kept in localStorage (which only this origin's
 * pages can read). Without storage (a private window) it lasts as long as the page.
 */
export function installClientId(storage: Pick<Storage, 'getItem' | 'setItem'> | null = globalThis.localStorage ?? null): string {
  try {
    const kept = storage?.getItem(CLIENT_ID_KEY);
    if (kept && CLIENT_ID.test(kept)) return kept;
  } catch {
    // Storage refused (privacy settings): make one for this page.
  }
  const made = globalThis.crypto.randomUUID();
  try {
    storage?.setItem(CLIENT_ID_KEY, made);
  } catch {
    // As above: the id lasts as long as the page.
  }
  return made;
}

/** A photo as multipart form data (field `file`, as the sidecar expects). */
export function photoForm(photo: Blob, name = 'photo.jpg'): FormData {
  const form = new FormData();
  form.append('file', photo, photo instanceof File ? photo.name : name);
  return form;
}

/** Refuse a photo over the sidecar's limit before sending 20+ MB over the wire. */
export function checkPhotoSize(photo: Blob): void {
  if (photo.size > MAX_IMAGE_BYTES) {
    throw new ApiError(
      413,
      'payload_too_large',
      `the image is ${(photo.size / 1e6).toFixed(1)} MB; the limit is 20 MB`,
      { size: photo.size, limit: MAX_IMAGE_BYTES },
    );
  }
}
