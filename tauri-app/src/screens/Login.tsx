import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { ErrorText } from '../components/ErrorText';
import { LanguageSwitch } from '../components/LanguageSwitch';
import { useI18n } from '../i18n';
import { useApi, useApp } from '../state/app';

export function Login() {
  const { t, err } = useI18n();
  const api = useApi();
  const { setLogin, loginNotice } = useApp();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(loginNotice ? new ApiError(401, loginNotice, loginNotice) : null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!username.trim() || !password) {
      setError(new Error('missing'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const login = await api.post('/auth/login', { json: { username: username.trim(), password } });
      setLogin(login);
    } catch (caught) {
      setError(caught);
      setPassword('');
    } finally {
      setBusy(false);
    }
  };

  const message =
    error instanceof Error && !(error instanceof ApiError) ? t('login.missing') : error ? err(error) : null;

  return (
    <main className="login" data-testid="login-screen">
      <form className="card login__card" onSubmit={(e) => void submit(e)} noValidate>
        <h1 className="login__brand">{t('app.title')}</h1>
        <h2>{t('login.title')}</h2>
        <label className="field">
          <span>{t('login.username')}</span>
          <input
            name="username"
            autoComplete="username"
            autoCapitalize="none"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            data-testid="username"
          />
        </label>
        <label className="field">
          <span>{t('login.password')}</span>
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            data-testid="password"
          />
        </label>
        <ErrorText message={message} testId="login-error" />
        <button type="submit" className="btn btn--primary btn--wide" disabled={busy} data-testid="login-submit">
          {busy ? t('login.busy') : t('login.submit')}
        </button>
        <p className="hint">{t('login.offlineNote')}</p>
        <LanguageSwitch />
      </form>
    </main>
  );
}
