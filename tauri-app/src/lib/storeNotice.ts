// The store's encryption as the settings screen reports it: a plaintext development store
// (KENSA_PLAINTEXT=1) is a warning that cannot be missed, an encrypted one needs no words.
import type { Schemas } from '../api/client';
import type { Translate } from '../i18n/translate';

type Health = Schemas['HealthPublic'];

export interface StoreWarning {
  title: string;
  body: string;
}

/** The warning for a plaintext store, or null (encrypted, or not known yet). */
export function plaintextWarning(health: Pick<Health, 'encrypted'> | null, t: Translate): StoreWarning | null {
  if (!health || health.encrypted !== false) return null;
  return { title: t('settings.plaintextTitle'), body: t('settings.plaintextBody') };
}
