// The signature's words: the sidecar's refusals in the signer's language, and a word for every
// meaning and role the sidecar can name (schema.formats.signatures, the roles' matrix).
import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import type { Schemas } from '../api/client';
import { errorMessage } from './errors';
import { isMessageKey, LANGS, translate } from './translate';

const api = (code: string, detail: unknown = null, status = 400) => new ApiError(status, code, `server: ${code}`, detail);

const MEANINGS: Schemas['SignatureCreate']['meaning'][] = ['approved', 'overridden', 'released', 'discarded'];
const ROLES = ['inspector', 'supervisor', 'admin'];

describe('signatures in the signer’s language', () => {
  it('a wrong password says nothing was signed, with the attempts left', () => {
    expect(errorMessage(api('signature_invalid', { attempts_left: 4 }, 401), 'ja')).toBe(
      'パスワードが違います。署名されていません（あと 4 回失敗するとロックされます）。',
    );
    expect(errorMessage(api('signature_invalid', null, 401), 'en')).toBe('Wrong password: nothing was signed.');
  });

  it('a missing signature says one is needed', () => {
    expect(errorMessage(api('signature_required', { meaning: 'approved' }, 428), 'ja')).toBe('この操作には署名が必要です。');
    expect(errorMessage(api('signature_required', { meaning: 'approved' }, 428), 'en')).toBe('This needs your signature.');
  });

  it('every meaning and role has its words in each language', () => {
    for (const lang of LANGS) {
      for (const code of [...MEANINGS.map((m) => `sig.meaning.${m}`), ...ROLES.map((r) => `sig.role.${r}`)]) {
        expect(isMessageKey(code), code).toBe(true);
        if (isMessageKey(code)) expect(translate(lang, code).length, `${lang} ${code}`).toBeGreaterThan(0);
      }
    }
  });

  it('the history line reads as the record has it', () => {
    const vars = { name: '鈴木', role: '監督者', time: '2026/11/30 10:12', meaning: '上書き承認' };
    expect(translate('ja', 'sig.line', vars)).toBe('署名: 鈴木 (監督者) 2026/11/30 10:12 — 上書き承認');
    expect(translate('en', 'sig.line', { ...vars, role: 'Supervisor', meaning: 'override approved' })).toBe(
      'Signature: 鈴木 (Supervisor) 2026/11/30 10:12 — override approved',
    );
  });
});
