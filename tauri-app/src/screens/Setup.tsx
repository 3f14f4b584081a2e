// First run: a tablet with no users and no server shows this instead of the login. Two ways in:
// connect to a server with the one-time enrollment code (typed, or the admin's QR read by a
// wedge scanner into the scan field), or work stand-alone with a local administrator.
import { useEffect, useState, type FormEvent } from 'react';
import { reportFirstScreen } from '../api/endpoint';
import { ErrorText } from '../components/ErrorText';
import { LanguageSwitch } from '../components/LanguageSwitch';
import { useI18n } from '../i18n';
import { parseEnrollmentQr } from '../lib/enrollment';
import { useApi } from '../state/app';
import { Login } from './Login';

/** The login, or the setup screen while the sidecar says this is the first run. */
export function LoginOrSetup() {
  const api = useApi();
  const [firstRun, setFirstRun] = useState<boolean | null>(null);
  useEffect(() => {
    let live = true;
    api
      .get('/setup')
      .then((state) => live && setFirstRun(state.first_run))
      // An older sidecar without the route, or a failure: the login, as before.
      .catch(() => live && setFirstRun(false));
    return () => {
      live = false;
    };
  }, [api]);
  useEffect(() => {
    if (firstRun !== null) reportFirstScreen(firstRun ? 'setup' : 'login');
  }, [firstRun]);
  if (firstRun === null) return null;
  return firstRun ? <Setup onDone={() => setFirstRun(false)} /> : <Login />;
}

type Mode = 'choose' | 'connect' | 'standalone';

function Setup({ onDone }: { onDone: () => void }) {
  const { t } = useI18n();
  const [mode, setMode] = useState<Mode>('choose');
  const [madePassword, setMadePassword] = useState<{ username: string; password: string } | null>(null);

  if (madePassword) {
    return (
      <main className="login" data-testid="setup-screen">
        <div className="card login__card">
          <h1 className="login__brand">{t('app.title')}</h1>
          <h2>{t('setup.passwordTitle')}</h2>
          <p>{t('setup.passwordOnce')}</p>
          <p className="setup__secret">
            {madePassword.username}
            <br />
            <code data-testid="setup-password">{madePassword.password}</code>
          </p>
          <button type="button" className="btn btn--primary btn--wide" onClick={onDone} data-testid="setup-done">
            {t('setup.toLogin')}
          </button>
        </div>
      </main>
    );
  }

  return (
    <main className="login" data-testid="setup-screen">
      <div className="card login__card">
        <h1 className="login__brand">{t('app.title')}</h1>
        <h2>{t('setup.title')}</h2>
        {mode === 'choose' ? (
          <>
            <p>{t('setup.intro')}</p>
            <div className="setup__form">
            <button type="button" className="btn btn--primary btn--wide" onClick={() => setMode('connect')} data-testid="setup-connect">
              {t('setup.connect')}
            </button>
            <button type="button" className="btn btn--wide" onClick={() => setMode('standalone')} data-testid="setup-standalone">
              {t('setup.standalone')}
            </button>
            </div>
          </>
        ) : mode === 'connect' ? (
          <ConnectForm onBack={() => setMode('choose')} onDone={onDone} />
        ) : (
          <StandaloneForm onBack={() => setMode('choose')} onDone={onDone} onMade={setMadePassword} />
        )}
        <LanguageSwitch />
      </div>
    </main>
  );
}

function ConnectForm({ onBack, onDone }: { onBack: () => void; onDone: () => void }) {
  const { t, err } = useI18n();
  const api = useApi();
  const [scan, setScan] = useState('');
  const [serverUrl, setServerUrl] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);

  const [notQr, setNotQr] = useState(false);
  // Read when the scanner ends its text with Enter, never while it types: a half-typed code is
  // already a well-formed QR text.
  const readScan = () => {
    if (!scan.trim()) return;
    const found = parseEnrollmentQr(scan);
    setNotQr(!found);
    if (found) {
      setServerUrl(found.serverUrl);
      setCode(found.code);
      setScan('');
      setError(null);
      setMissing(false);
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!serverUrl.trim() || !code.trim()) {
      setMissing(true);
      return;
    }
    setMissing(false);
    setBusy(true);
    setError(null);
    try {
      await api.post('/setup/connect', { json: { server_url: serverUrl.trim(), code: code.trim() } });
      onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="setup__form" onSubmit={(e) => void submit(e)} noValidate>
      <label className="field">
        <span>{t('setup.scanLabel')}</span>
        <input
          name="enroll-scan"
          autoFocus
          autoComplete="off"
          value={scan}
          onChange={(e) => setScan(e.target.value)}
          onBlur={readScan}
          onKeyDown={(e) => {
            // A wedge scanner ends with Enter: read the scan, not submit a half-filled form.
            if (e.key === 'Enter') {
              e.preventDefault();
              readScan();
            }
          }}
          data-testid="setup-scan"
        />
      </label>
      <label className="field">
        <span>{t('setup.serverUrl')}</span>
        <input
          name="server-url"
          type="url"
          inputMode="url"
          autoCapitalize="none"
          placeholder="https://"
          value={serverUrl}
          onChange={(e) => setServerUrl(e.target.value)}
          data-testid="setup-server-url"
        />
      </label>
      <label className="field">
        <span>{t('setup.code')}</span>
        <input
          name="enroll-code"
          autoCapitalize="characters"
          autoComplete="one-time-code"
          placeholder="ABCDE-FGHJK"
          value={code}
          onChange={(e) => setCode(e.target.value.toUpperCase())}
          data-testid="setup-code"
        />
      </label>
      <ErrorText
        message={notQr ? t('err.not_enrollment_qr') : missing ? t('setup.missing') : error ? err(error) : null}
        testId="setup-error"
      />
      <button type="submit" className="btn btn--primary btn--wide" disabled={busy} data-testid="setup-connect-submit">
        {busy ? t('setup.connecting') : t('setup.connectSubmit')}
      </button>
      <button type="button" className="btn btn--wide" onClick={onBack} disabled={busy}>
        {t('setup.back')}
      </button>
    </form>
  );
}

function StandaloneForm({
  onBack,
  onDone,
  onMade,
}: {
  onBack: () => void;
  onDone: () => void;
  onMade: (made: { username: string; password: string }) => void;
}) {
  const { t, err } = useI18n();
  const api = useApi();
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const made = await api.post('/setup/local-admin', {
        json: { username: username.trim(), ...(password ? { password } : {}) },
      });
      if (made.password) onMade({ username: made.username, password: made.password });
      else onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="setup__form" onSubmit={(e) => void submit(e)} noValidate>
      <p className="hint">{t('setup.standaloneNote')}</p>
      <label className="field">
        <span>{t('login.username')}</span>
        <input
          name="username"
          autoCapitalize="none"
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          data-testid="setup-username"
        />
      </label>
      <label className="field">
        <span>{t('setup.passwordOptional')}</span>
        <input
          name="new-password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          data-testid="setup-password-input"
        />
      </label>
      <p className="hint">{t('setup.passwordRules')}</p>
      <ErrorText message={error ? err(error) : null} testId="setup-error" />
      <button type="submit" className="btn btn--primary btn--wide" disabled={busy || !username.trim()} data-testid="setup-standalone-submit">
        {t('setup.createAdmin')}
      </button>
      <button type="button" className="btn btn--wide" onClick={onBack} disabled={busy}>
        {t('setup.back')}
      </button>
    </form>
  );
}
