// Settings: language, the sync server and this device's registration, what is running.
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { ErrorText } from '../components/ErrorText';
import { LanguageSwitch } from '../components/LanguageSwitch';
import { useI18n } from '../i18n';
import { useApi, useApp } from '../state/app';

const SERVER_KEY = 'kensa.serverUrl';

/** What the sidecar shows before a connected tablet moves to another server (409 confirm_replace). */
interface MoveQuestion {
  current_server_url: string;
  current_device_name: string | null;
  new_server_url: string;
  new_device_name: string;
  pending_rows: number;
}

function moveQuestion(caught: unknown): MoveQuestion | null {
  if (!(caught instanceof ApiError) || caught.code !== 'confirm_replace') return null;
  const d = caught.detail as Partial<MoveQuestion> | null;
  if (!d || typeof d.current_server_url !== 'string' || typeof d.new_server_url !== 'string') return null;
  return {
    current_server_url: d.current_server_url,
    current_device_name: typeof d.current_device_name === 'string' ? d.current_device_name : null,
    new_server_url: d.new_server_url,
    new_device_name: typeof d.new_device_name === 'string' ? d.new_device_name : '',
    pending_rows: typeof d.pending_rows === 'number' ? d.pending_rows : 0,
  };
}

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
  const [move, setMove] = useState<MoveQuestion | null>(null);
  // Where the tablet's records go and whose logins it trusts is a supervisor's decision.
  const mayConnect = login?.user.role === 'admin';

  useEffect(() => {
    api.get('/health').then((h) => setVersion(h.version ?? null), () => setVersion(null));
    api.untyped<Record<string, unknown>>('get', '/sync/status').then(setSyncStatus, () => setSyncStatus(null));
  }, [api]);

  const connect = async (e: FormEvent | null, replaceServerUrl?: string) => {
    e?.preventDefault();
    setMessage(null);
    setMove(null);
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
      await api.untyped<{ verified?: boolean; message?: string }>('post', '/sync/connect', {
        json: { server_url: url, token: token.trim(), replace_server_url: replaceServerUrl ?? null },
        timeoutMs: 60_000,
      });
      window.localStorage.setItem(SERVER_KEY, url);
      setToken('');
      setMessage({ ok: true, text: t('settings.connected') });
      api.untyped<Record<string, unknown>>('get', '/sync/status').then(setSyncStatus, () => undefined);
    } catch (caught) {
      const question = moveQuestion(caught);
      if (question) {
        setMove(question);
      } else if (caught instanceof ApiError && (caught.status === 404 || caught.status === 405)) {
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
        {mayConnect ? null : (
          <p className="hint" data-testid="connect-admin-only">
            {t('settings.adminOnly')}
          </p>
        )}
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
        {move ? (
          <div className="card" role="alertdialog" data-testid="confirm-move">
            <p>
              {t('settings.moveQuestion', {
                current: move.current_server_url,
                currentDevice: move.current_device_name ?? '—',
                next: move.new_server_url,
                nextDevice: move.new_device_name,
              })}
            </p>
            {move.pending_rows > 0 ? <p>{t('settings.movePending', { count: move.pending_rows })}</p> : null}
            <button
              type="button"
              className="btn btn--danger"
              disabled={busy}
              onClick={() => void connect(null, move.current_server_url)}
              data-testid="confirm-move-yes"
            >
              {t('settings.moveConfirm')}
            </button>
            <button type="button" className="btn" onClick={() => setMove(null)} data-testid="confirm-move-no">
              {t('settings.moveKeep')}
            </button>
          </div>
        ) : null}
        <button type="submit" className="btn btn--primary" disabled={busy || !mayConnect} data-testid="connect">
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
