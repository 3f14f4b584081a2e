// Settings: language, the sync server and this device's registration, the sync status (the same
// facts as the status bar, from GET /sync/status, with the records held back), what is running.
// A plaintext development store (KENSA_PLAINTEXT=1) is a banner above everything else.
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, type Schemas } from '../api/client';
import { Calibration } from '../components/Calibration';
import { ErrorText } from '../components/ErrorText';
import { LanguageSwitch } from '../components/LanguageSwitch';
import { Refusals } from '../components/Refusals';
import { SyncFacts } from '../components/SyncFacts';
import { useI18n } from '../i18n';
import { may } from '../lib/permissions';
import { plaintextWarning } from '../lib/storeNotice';
import { useApi, useApp } from '../state/app';
import { recordKind, serverReason } from '../lib/words';

const SERVER_KEY = 'kensa.serverUrl';

type SyncStatus = Schemas['SyncStatus'];
type Health = Schemas['HealthPublic'];

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

const NONE: ReadonlySet<string> = new Set();

export function Settings() {
  const { t, err, dateTime } = useI18n();
  const api = useApi();
  const { endpoint, login, events } = useApp();
  const [serverUrl, setServerUrl] = useState(() => window.localStorage.getItem(SERVER_KEY) ?? '');
  const [token, setToken] = useState('');
  const [pin, setPin] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [health, setHealth] = useState<Health | null>(null);
  const [syncStatus, setSyncStatus] = useState<{ status: SyncStatus; receivedAt: number } | null>(null);
  const [move, setMove] = useState<MoveQuestion | null>(null);
  const [sent, setSent] = useState<{ ok: boolean; text: string } | null>(null);
  const [refused, setRefused] = useState<ReadonlySet<string>>(NONE);
  // Where the tablet's records go and whose logins it trusts is the administrator's decision.
  const mayConnect = may(login?.user, 'connect');
  const mayRefusals = may(login?.user, 'set_aside');

  // A set-aside operation sent again once its cause is mended (a supervisor's call, audited).
  const sendAgain = async (seq: number) => {
    setSent(null);
    try {
      await api.post('/sync/set-aside/{seq}/retry', { path: { seq } });
      setSent({ ok: true, text: t('settings.sentAgain') });
    } catch (caught) {
      setSent({ ok: false, text: err(caught) });
    }
    await loadStatus();
  };

  const loadStatus = () =>
    api.get('/sync/status').then(
      (status) => setSyncStatus({ status, receivedAt: Date.now() }),
      () => setSyncStatus(null),
    );

  useEffect(() => {
    api.get('/health').then(setHealth, () => setHealth(null));
  }, [api]);

  // Read again whenever the event stream brings a new sync summary: the screen follows the same
  // beat as the status bar, without a poll of its own.
  const beat = events.sync?.receivedAt ?? 0;
  useEffect(() => {
    void loadStatus();
  }, [api, beat]);

  // The field starts from where the tablet is connected (this browser may never have typed it),
  // until the administrator types another address.
  const connectedUrl = syncStatus?.status.server_url ?? null;
  const [urlEdited, setUrlEdited] = useState(false);
  useEffect(() => {
    if (connectedUrl && !urlEdited) setServerUrl(connectedUrl);
  }, [connectedUrl, urlEdited]);

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
      await api.post('/sync/connect', {
        json: {
          server_url: url,
          token: token.trim(),
          replace_server_url: replaceServerUrl ?? null,
          server_pin: pin.trim() || null,
        },
        timeoutMs: 60_000,
      });
      window.localStorage.setItem(SERVER_KEY, url);
      setToken('');
      setPin('');
      setMessage({ ok: true, text: t('settings.connected') });
      void loadStatus();
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

  const version = health?.version ?? null;
  const plaintext = plaintextWarning(health, t);

  return (
    <main className="screen" data-testid="settings-screen">
      {plaintext ? (
        <div className="store-warning" role="alert" data-testid="plaintext-store">
          <strong>{plaintext.title}</strong>
          <p>{plaintext.body}</p>
        </div>
      ) : null}
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
        {mayConnect ? (
          <>
            <label className="field">
              <span>{t('settings.serverUrl')}</span>
              <input
                type="url"
                inputMode="url"
                autoComplete="off"
                placeholder="https://kensa.example:8443"
                value={serverUrl}
                onChange={(e) => {
                  setUrlEdited(true);
                  setServerUrl(e.target.value);
                }}
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
            <label className="field">
              <span>{t('settings.serverPin')}</span>
              <input
                type="text"
                autoComplete="off"
                spellCheck={false}
                value={pin}
                onChange={(e) => setPin(e.target.value)}
                aria-describedby="server-pin-hint"
                data-testid="server-pin"
              />
              <small id="server-pin-hint" className="hint">
                {t('settings.serverPinHint')}
              </small>
            </label>
            <Outcome result={message} testId="connect-result" />
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
            <button type="submit" className="btn btn--primary" disabled={busy} data-testid="connect">
              {busy ? t('settings.connecting') : t('settings.connect')}
            </button>
          </>
        ) : null}
      </form>
      <section className="card" data-testid="settings-sync">
        <h2>{t('settings.syncStatus')}</h2>
        {syncStatus ? (
          <SyncDetails
            status={syncStatus.status}
            receivedAt={syncStatus.receivedAt}
            dateTime={dateTime}
            listedElsewhere={mayRefusals ? refused : NONE}
            onSendAgain={mayRefusals ? sendAgain : null}
          />
        ) : null}
        <Outcome result={sent} testId="send-again-result" />
        {mayRefusals ? (
          <Refusals
            beat={syncStatus?.receivedAt ?? 0}
            mayResolve={may(login?.user, 'override')}
            onResolved={() => void loadStatus()}
            onListed={setRefused}
          />
        ) : null}
      </section>
      {may(login?.user, 'calibrate') ? <Calibration /> : null}
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

/** What an action came to: a success in words, or the error. */
function Outcome({ result, testId }: { result: { ok: boolean; text: string } | null; testId: string }) {
  if (!result) return null;
  return result.ok ? (
    <p className="success" role="status" data-testid={testId}>
      {result.text}
    </p>
  ) : (
    <ErrorText message={result.text} testId={testId} />
  );
}

function SyncDetails({
  status,
  receivedAt,
  dateTime,
  listedElsewhere,
  onSendAgain,
}: {
  status: SyncStatus;
  receivedAt: number;
  dateTime: (iso: string | null | undefined) => string;
  /** Set-aside operations the refusals list beside this one shows with their reasons. */
  listedElsewhere: ReadonlySet<string>;
  /** Sends one again; null where the login may not. */
  onSendAgain: ((seq: number) => Promise<void>) | null;
}) {
  const { t } = useI18n();
  const setAside = status.set_aside.filter((op) => !listedElsewhere.has(op.op_id));
  return (
    <>
      <SyncFacts received={{ summary: status, receivedAt }} />
      <ul className="plain">
        <li data-testid="sync-server">
          {status.server_url
            ? t('settings.syncServer', { url: status.server_url, device: status.device_name ?? '—' })
            : t('settings.notConnected')}
        </li>
        {status.server_pin ? (
          <li data-testid="sync-pin">{t('settings.syncPin', { pin: status.server_pin })}</li>
        ) : null}
        {status.next_attempt_in_s !== null && status.next_attempt_in_s !== undefined ? (
          <li>{t('settings.nextAttempt', { s: Math.ceil(status.next_attempt_in_s) })}</li>
        ) : null}
      </ul>
      {setAside.length ? (
        <>
          <h3>{t('settings.setAside')}</h3>
          <ul className="plain" data-testid="set-aside-list">
            {setAside.map((op) => (
              <li key={op.seq} data-testid="set-aside-op">
                {t('settings.setAsideOp', {
                  what: recordKind(t, op.entity_type, op.operation),
                  when: dateTime(op.set_aside_at),
                })}{' '}
                {/* The server's own words, which are English. */}
                <span lang="en" data-testid="set-aside-reason">
                  {serverReason(op.reason)}
                </span>{' '}
                {onSendAgain ? (
                  <button type="button" className="btn" onClick={() => void onSendAgain(op.seq)} data-testid="send-again">
                    {t('settings.sendAgain')}
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </>
  );
}
