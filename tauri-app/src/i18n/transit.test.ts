import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import { errorMessage, syncErrorText } from './errors';
import { LANGS } from './translate';

const api = (code: string, status: number, detail: unknown = null) =>
  new ApiError(status, code, `sidecar: ${code}`, detail);

describe('a refused connection to the server, in the administrator’s language', () => {
  it('plain http to another machine says to use https', () => {
    expect(errorMessage(api('insecure_url', 400), 'ja')).toBe(
      'http:// のサーバーには接続できません（通信が暗号化されません）。https:// で始まる URL を入力してください。',
    );
    expect(errorMessage(api('insecure_url', 400), 'en')).toContain('Enter a URL starting with https://');
  });

  it('a pin that does not match says nothing was sent', () => {
    const err = api('tls_pin_mismatch', 502, { pinned: 'AAAA', seen: 'BBBB' });
    expect(errorMessage(err, 'ja')).toContain('公開鍵が設定したピンと一致しません');
    expect(errorMessage(err, 'ja')).toContain('何も送信せずに');
    expect(errorMessage(err, 'en')).toContain('stopped before anything was sent');
  });

  it('an expired certificate names the certificate and the clock', () => {
    expect(errorMessage(api('tls_expired', 502), 'ja')).toContain('証明書の有効期限が切れています');
    expect(errorMessage(api('tls_expired', 502), 'en')).toBe(
      'The server’s certificate has expired (or this tablet’s clock is wrong). Ask the server’s administrator to renew the certificate.',
    );
  });

  it('an unknown CA, another name, a failed handshake and a malformed pin', () => {
    expect(errorMessage(api('tls_untrusted', 502), 'en')).toContain('not trusted');
    expect(errorMessage(api('tls_hostname', 502), 'ja')).toContain('別の名前用');
    expect(errorMessage(api('tls_failed', 502), 'en')).toContain('serves https');
    expect(errorMessage(api('pin_invalid', 400), 'ja')).toContain('SHA-256');
  });

  it('every transit code has its own words in both languages, none of them the fallback', () => {
    const codes = ['insecure_url', 'pin_invalid', 'tls_pin_mismatch', 'tls_expired', 'tls_untrusted', 'tls_hostname', 'tls_failed'];
    for (const lang of LANGS) {
      const texts = codes.map((code) => errorMessage(api(code, 502), lang));
      for (const [i, text] of texts.entries()) {
        expect(text, `${lang} ${codes[i]}`).not.toContain(codes[i]);
        expect(text, `${lang} ${codes[i]}`).not.toMatch(/\{\w+\}/);
      }
      expect(new Set(texts).size).toBe(codes.length);
    }
  });

  it('the status bar words a failed run by its kind when the connection was refused', () => {
    const recorded = 'the server’s public key does not match the pin set at connect';
    expect(syncErrorText('tls_pin_mismatch', recorded, 'ja')).toContain('ピンと一致しません');
    expect(syncErrorText('insecure_url', 'http://x is plain http', 'en')).toContain('https://');
    // Other failures keep the sidecar's own message.
    expect(syncErrorText('offline', 'cannot connect: refused', 'ja')).toBe('cannot connect: refused');
    expect(syncErrorText(null, 'server error 500', 'en')).toBe('server error 500');
  });
});
