import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { plaintextWarning } from './storeNotice';

describe('a plaintext store on the settings screen', () => {
  it('warns in Japanese that records and photos are not encrypted, and how to fix it', () => {
    const warning = plaintextWarning({ encrypted: false }, translator('ja'));
    expect(warning?.title).toBe('開発用ストア: この端末の記録と写真は暗号化されていません');
    expect(warning?.body).toContain('KENSA_PLAINTEXT=1');
    expect(warning?.body).toContain('鍵なしで');
    expect(warning?.body).toContain('kensa db encrypt');
  });

  it('warns in English in the same terms', () => {
    const warning = plaintextWarning({ encrypted: false }, translator('en'));
    expect(warning?.title).toBe('Development store: this tablet’s records and photos are NOT encrypted');
    expect(warning?.body).toContain('without a key');
    expect(warning?.body).toContain('kensa db encrypt');
  });

  it('says nothing for an encrypted store, or before the sidecar has answered', () => {
    expect(plaintextWarning({ encrypted: true }, translator('ja'))).toBeNull();
    expect(plaintextWarning(null, translator('en'))).toBeNull();
  });
});
