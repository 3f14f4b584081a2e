// Settings: language, the sync server and this device's registration, what is running.
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { ErrorText } from '../components/ErrorText';
import { LanguageSwitch } from '../components/LanguageSwitch';
import { useI18n } from '../i18n';
import { useApi, useApp } from '../state/app';

const SERVER_KEY = 'kensa.serverUrl';

export function Settings() {
  const { t, err } = useI18n();
  const api = useApi();
  const { endpoint, login } = useApp();
  const [serverUrl, setServerUrl] = useState(() => window.localStorage.getItem(SERVER_KEY) ?? '');
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [version, setVersion] = useState<string | null>(null);
  const [syncStatus, setSyncStatus] = useState<Record<string, unknown> | null>(null);

  useEffect(() => {
    api.get('/health').then((h) => setVersion(h.version ?? null), () => setVersion(null));
    api.untyped<Record<string, unknown>>('get', '/sync/status').then(setSyncStatus, () => setSyncStatus(null));
  }, [api]);

  const connect = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    const url = serverUrl.trim();
    if (!/^https?:\/\/\S+$/i.test(url)) {
      setMessage({ ok: false, text: t('settings.urlInvalid') });
      return;
    }
    if (!token.trim()) {
      setMessage({ ok: false, text: t('settings.tokenMissing') });
      return;
    }
    setBusy(true);
    try {
      const result = await api.untyped<{ verified?: boolean; message?: string }>('post', '/sync/connect', {
        json: { server_url: url, token: token.trim() },
        timeoutMs: 60_000,
      });
      window.localStorage.setItem(SERVER_KEY, url);
      setToken('');
      setMessage(
        result?.verified === false
          ? { ok: false, text: t('settings.savedUnverified', { message: result.message ?? '' }) }
          : { ok: true, text: t('settings.connected') },
      );
      api.untyped<Record<string, unknown>>('get', '/sync/status').then(setSyncStatus, () => undefined);
    } catch (caught) {
      if (caught instanceof ApiError && (caught.status === 404 || caught.status === 405)) {
        // The sync engine's routes are not in this sidecar (yet).
        setMessage({ ok: false, text: t('settings.syncUnavailable') });
      } else if (caught instanceof ApiError && err(caught) === t('err.unknown', { code: caught.code })) {
        // A sync error kensa has no words for: the server's own message says most.
        setMessage({ ok: false, text: t('err.sync_error', { message: caught.message }) });
      } else {
        setMessage({ ok: false, text: err(caught) });
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="screen" data-testid="settings-screen">
      <h1>{t('settings.title')}</h1>
      <section className="card">
        <h2>{t('lang.label')}</h2>
        <LanguageSwitch />
      </section>
      <form className="card" onSubmit={(e) => void connect(e)}>
        <h2>{t('settings.server')}</h2>
        <label className="field">
          <span>{t('settings.serverUrl')}</span>
          <input
            type="url"
            inputMode="url"
            autoComplete="off"
            placeholder="https://kensa.example:8443"
            value={serverUrl}
            onChange={(e) => setServerUrl(e.target.value)}
            data-testid="server-url"
          />
        </label>
        <label className="field">
          <span>{t('settings.deviceToken')}</span>
          <input
            type="password"
            autoComplete="off"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            data-testid="device-token"
          />
        </label>
        {message ? (
          message.ok ? (
            <p className="success" role="status" data-testid="connect-result">
              {message.text}
            </p>
          ) : (
            <ErrorText message={message.text} testId="connect-result" />
          )
        ) : null}
        <button type="submit" className="btn btn--primary" disabled={busy} data-testid="connect">
          {busy ? t('settings.connecting') : t('settings.connect')}
        </button>
        {syncStatus ? (
          <details className="sync-status">
            <summary>{t('settings.syncStatus')}</summary>
            <pre>{JSON.stringify(syncStatus, null, 2)}</pre>
          </details>
        ) : null}
      </form>
      <section className="card">
        <h2>{t('settings.device')}</h2>
        <ul className="plain">
          {version ? <li>{t('settings.version', { version })}</li> : null}
          {endpoint ? <li>{t('settings.endpoint', { url: endpoint.baseUrl })}</li> : null}
          {login ? <li>{t('settings.user', { user: login.user.full_name ?? login.user.username })}</li> : null}
        </ul>
      </section>
    </main>
  );
}
