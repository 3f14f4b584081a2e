import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import { errorMessage } from './errors';
import { LANGS } from './translate';

const api = (code: string, detail: unknown = null, status = 400) => new ApiError(status, code, `server: ${code}`, detail);

describe('API errors in the inspector’s language', () => {
  it('wrong password, with the attempts left', () => {
    expect(errorMessage(api('bad_credentials', { attempts_left: 2 }, 401), 'ja')).toBe(
      'ユーザー名またはパスワードが違います（あと 2 回失敗するとロックされます）。',
    );
    expect(errorMessage(api('bad_credentials', null, 401), 'en')).toBe('Wrong username or password.');
  });

  it('locked account, with the unlock time in local time', () => {
    // A fixed afternoon, so the unlock falls on the same day whatever the clock says.
    const now = new Date(2026, 11, 3, 14, 0);
    const until = new Date(now.getTime() + 5 * 60_000);
    const err = api('account_locked', { locked_until: until.toISOString() }, 423);
    expect(errorMessage(err, 'ja', now)).toBe('ログインの失敗が続いたため、このアカウントは 14:05 までロックされています。');
    expect(errorMessage(err, 'en', now)).toBe('Too many failed logins: this account is locked until 14:05.');
    expect(errorMessage(api('account_locked', null, 423), 'en')).toContain('locked for a while');
  });

  it('a lock that ends after midnight names the day', () => {
    const now = new Date(2026, 11, 3, 23, 58);
    const until = new Date(now.getTime() + 5 * 60_000);
    const err = api('account_locked', { locked_until: until.toISOString() }, 423);
    expect(errorMessage(err, 'ja', now)).toBe('ログインの失敗が続いたため、このアカウントは 12/04 00:03 までロックされています。');
    expect(errorMessage(err, 'en', now)).toBe('Too many failed logins: this account is locked until 04/12, 00:03.');
  });

  it('unknown product names the product', () => {
    const err = api('product_not_found', { product_code: 'XXX-999' }, 404);
    expect(errorMessage(err, 'ja')).toBe('製品 XXX-999 はこの端末の検査マスタにありません。');
    expect(errorMessage(err, 'en')).toBe('Product XXX-999 is not in this tablet’s inspection masters.');
  });

  it('photos: undecodable, truncated, too large', () => {
    expect(errorMessage(api('image_invalid', { size: 100 }), 'ja')).toContain('この画像は読み込めません');
    expect(errorMessage(api('image_invalid', { reason: 'truncated' }), 'en')).toBe('The image is cut short. Take it again.');
    expect(errorMessage(api('payload_too_large', { size: 26_214_400 }, 413), 'en')).toBe(
      'The file is too large (26.2 MB). The limit is 20 MB.',
    );
    expect(errorMessage(api('payload_too_large', null, 413), 'ja')).toBe('ファイルが大きすぎます。上限は 20 MB です。');
    expect(errorMessage(api('qr_decode_failed', null, 422), 'ja')).toContain('コード（QR・データマトリックス・Code 128）を読み取れませんでした');
  });

  it('illegal transitions name the state in the current language', () => {
    expect(errorMessage(api('illegal_transition', { state: 'completed' }, 409), 'ja')).toBe(
      'この操作は今の状態（完了）ではできません。',
    );
    expect(errorMessage(api('illegal_transition', { state: 'verified' }, 409), 'en')).toBe(
      'This cannot be done in the current state (Verified).',
    );
  });

  it('a sidecar that is gone is a clear message, not an exception', () => {
    const gone = new ApiError(0, 'sidecar_unreachable', 'TypeError: Failed to fetch');
    expect(errorMessage(gone, 'ja')).toContain('kensa サービスに接続できません');
    expect(errorMessage(gone, 'en')).toContain('cannot be reached');
  });

  it('every code has a message in both languages; unknown codes say which', () => {
    const codes = [
      'items_open', 'item_required', 'no_items', 'no_image', 'timeout', 'login_required', 'login_invalid',
      'unauthorized', 'validation_error', 'invalid_input', 'not_found', 'conflict', 'pipeline_error',
      'internal_error', 'bad_response', 'qr_payload_invalid', 'no_pipeline', 'model_unavailable',
      'forbidden_role', 'not_your_inspection', 'not_your_job', 'not_your_inspections',
      'login_busy', 'already_resolved', 'not_resolvable', 'refusal_not_found', 'sync_disabled',
      'not_completed', 'not_verified', 'too_many_attempts', 'user_exists', 'timezone_unknown',
      'photo_unreadable', 'photo_missing', 'forbidden', 'unprocessable', 'pipeline_step_failed',
      'criteria_invalid', 'model_incompatible',
    ];
    for (const lang of LANGS) {
      for (const code of codes) {
        const text = errorMessage(api(code, code === 'items_open' ? { items: ['D-BORE'] } : null), lang);
        expect(text, `${lang} ${code}`).not.toMatch(/\{\w+\}/);
        expect(text, `${lang} ${code}`).not.toContain(code === 'not_found' ? 'xx' : `(${code})`);
      }
    }
    expect(errorMessage(api('brand_new_code'), 'en')).toBe('Something went wrong (brand_new_code).');
    expect(errorMessage(api('items_open', { items: ['D-BORE', 'F-PISTON'] }, 409), 'en')).toContain('D-BORE, F-PISTON');
  });

  it('a photo the tablet cannot open says why, by its reason', () => {
    const unreadable = (reason: string | null) => api('photo_unreadable', reason ? { reason } : null, 500);
    expect(errorMessage(unreadable('missing'), 'en')).toBe('The photo file is missing from this tablet.');
    expect(errorMessage(unreadable('truncated'), 'ja')).toBe('写真のファイルが壊れていて表示できません。撮り直してください。');
    expect(errorMessage(unreadable('wrong_key'), 'en')).toBe('The photo cannot be opened with this tablet’s key.');
    expect(errorMessage(unreadable('unknown_format'), 'en')).toContain('newer kensa');
    expect(errorMessage(unreadable('io'), 'en')).toBe('The photo cannot be read.');
    expect(errorMessage(unreadable(null), 'ja')).toBe('写真を読み取れません。');
    expect(errorMessage(api('photo_missing', { reason: 'missing' }, 404), 'en')).toBe('The photo file is missing from this tablet.');
  });

  it('a code this UI has no words for is worded by its status, where the status says enough', () => {
    expect(errorMessage(api('brand_new_refusal', null, 403), 'en')).toBe('Your role does not allow this.');
    expect(errorMessage(api('brand_new_clash', null, 409), 'ja')).toBe('ほかの操作と競合しました。画面を更新してください。');
    expect(errorMessage(api('brand_new_limit', null, 429), 'en')).toBe('Too many attempts. Wait a moment and try again.');
    expect(errorMessage(api('brand_new_fault', null, 500), 'en')).toBe('Something went wrong (brand_new_fault).');
  });

  it('non-API errors do not crash the mapping', () => {
    expect(errorMessage(new Error('boom'), 'en')).toBe('Something went wrong (boom).');
    expect(errorMessage('weird', 'ja')).toBe('エラーが起きました（weird）。');
  });
});
