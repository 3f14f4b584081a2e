import { Component, useEffect, useLayoutEffect, useRef, useState, type ErrorInfo, type ReactNode } from 'react';
import { onShellStatus, type ShellStatus } from './api/endpoint';
import { startStage } from './lib/startStage';
import { ConnectionBanner } from './components/ConnectionBanner';
import { ProgressTray } from './components/ProgressTray';
import { ResumeDialog } from './components/ResumeDialog';
import { StatusBar } from './components/StatusBar';
import { useI18n } from './i18n';
import { Dashboard } from './screens/Dashboard';
import { History } from './screens/History';
import { Scan } from './screens/Scan';
import { LoginOrSetup } from './screens/Setup';
import { SessionScreen } from './screens/Session';
import { Settings } from './screens/Settings';
import { Summary } from './screens/Summary';
import { Target } from './screens/Target';
import { useApi, useApp } from './state/app';
import { navigate, useRoute, type Route } from './state/route';

const ICONS: Record<string, ReactNode> = {
  scan: <path d="M3 3h6v6H3zM15 3h6v6h-6zM3 15h6v6H3zM14 14h3v3h-3zM18 18h3v3h-3zM14 19h2M19 14h2" />,
  history: <path d="M4 6h16M4 12h16M4 18h10" />,
  dashboard: <path d="M4 20V10M10 20V4M16 20v-7M22 20H2" />,
  settings: (
    <>
      <circle cx="12" cy="12" r="3.2" />
      <path d="M12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1" />
    </>
  ),
};

const NAV: { route: Route; key: 'nav.scan' | 'nav.history' | 'nav.dashboard' | 'nav.settings' }[] = [
  { route: { name: 'scan' }, key: 'nav.scan' },
  { route: { name: 'history' }, key: 'nav.history' },
  { route: { name: 'dashboard' }, key: 'nav.dashboard' },
  { route: { name: 'settings' }, key: 'nav.settings' },
];

function section(route: Route): Route['name'] {
  if (route.name === 'target' || route.name === 'session') return 'scan';
  if (route.name === 'summary') return route.from === 'history' ? 'history' : 'scan';
  return route.name;
}

function Screen({ route }: { route: Route }) {
  switch (route.name) {
    case 'scan':
      return <Scan />;
    case 'target':
      return <Target />;
    case 'session':
      return <SessionScreen sessionId={route.sessionId} itemId={route.itemId} />;
    case 'summary':
      return <Summary sessionId={route.sessionId} from={route.from} />;
    case 'history':
      return <History />;
    case 'dashboard':
      return <Dashboard />;
    case 'settings':
      return <Settings />;
  }
}

function Shell() {
  const { t } = useI18n();
  const api = useApi();
  const { login, setLogin } = useApp();
  const route = useRoute();
  const current = section(route);
  // The menu sticks below the sticky top bar, whose height changes as it wraps: measured, so the
  // menu never slides under it.
  const topbar = useRef<HTMLElement>(null);
  useLayoutEffect(() => {
    const el = topbar.current;
    if (!el) return;
    const root = document.documentElement;
    const set = () => root.style.setProperty('--topbar-h', `${el.getBoundingClientRect().height}px`);
    set();
    const observer = new ResizeObserver(set);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  const logout = async () => {
    try {
      await api.post('/auth/logout');
    } catch {
      // Logged out here regardless: the token is dropped.
    }
    setLogin(null);
    navigate({ name: 'scan' });
  };
  return (
    <div className="app">
      <header className="topbar" ref={topbar}>
        <span className="brand">{t('app.title')}</span>
        <StatusBar />
        {login ? (
          <div className="topbar__user">
            <span className="muted" data-testid="user-name">
              {login.user.full_name ?? login.user.username}
            </span>
            <button type="button" className="btn btn--small" onClick={() => void logout()} data-testid="logout">
              {t('nav.logout')}
            </button>
          </div>
        ) : null}
      </header>
      <ConnectionBanner />
      <ProgressTray />
      {login ? (
        <div className="layout">
          <nav className="nav" aria-label={t('nav.main')}>
            {NAV.map((entry) => (
              <button
                key={entry.key}
                type="button"
                className={`nav__btn${current === entry.route.name ? ' is-active' : ''}`}
                aria-current={current === entry.route.name ? 'page' : undefined}
                onClick={() => navigate(entry.route)}
                data-testid={`nav-${entry.route.name}`}
              >
                <svg className="nav__icon" viewBox="0 0 24 24" aria-hidden="true">
                  {ICONS[entry.route.name]}
                </svg>
                <span className="nav__label">{t(entry.key)}</span>
              </button>
            ))}
          </nav>
          <div className="content">
            <Screen route={route} />
          </div>
          <ResumeDialog />
        </div>
      ) : (
        <LoginOrSetup />
      )}
    </div>
  );
}

/** The shell's word on its sidecar while it starts: a real stage, never a made-up percentage. */
function useShellStatus(): ShellStatus | null {
  const [status, setStatus] = useState<ShellStatus | null>(null);
  useEffect(() => {
    let stop: (() => void) | null = null;
    let live = true;
    void onShellStatus((next) => live && setStatus(next)).then((unlisten) => {
      if (live) stop = unlisten;
      else unlisten();
    });
    return () => {
      live = false;
      stop?.();
    };
  }, []);
  return status;
}

function Starting() {
  const { t } = useI18n();
  const { endpointError, retryEndpoint } = useApp();
  const stage = startStage(useShellStatus(), t);
  return (
    <main className="login" data-testid="starting">
      <div className="card login__card">
        <h1 className="login__brand">{t('app.title')}</h1>
        {endpointError ? (
          <>
            <p className="error" role="alert">
              {t('app.noService')}
            </p>
            <button type="button" className="btn btn--primary" onClick={retryEndpoint}>
              {t('app.retry')}
            </button>
          </>
        ) : (
          <div role="status" aria-live="polite">
            <div className="splash__bar" aria-hidden="true" />
            <p className="hint" data-testid="starting-stage">
              {stage}
            </p>
          </div>
        )}
      </div>
    </main>
  );
}

/** A bug in one screen shows a message and a way back, never a blank page. */
class Boundary extends Component<{ children: ReactNode; fallback: (reset: () => void) => ReactNode }, { failed: boolean }> {
  override state = { failed: false };

  static getDerivedStateFromError(): { failed: boolean } {
    return { failed: true };
  }

  override componentDidCatch(error: unknown, info: ErrorInfo): void {
    console.error('kensa UI error', error, info.componentStack);
  }

  override render(): ReactNode {
    return this.state.failed ? this.props.fallback(() => this.setState({ failed: false })) : this.props.children;
  }
}

function Crashed({ reset }: { reset: () => void }) {
  const { t } = useI18n();
  return (
    <main className="login" data-testid="crashed">
      <div className="card login__card">
        <p className="error" role="alert">
          {t('err.internal_error')}
        </p>
        <button
          type="button"
          className="btn btn--primary"
          onClick={() => {
            navigate({ name: 'scan' });
            reset();
          }}
        >
          {t('common.back')}
        </button>
      </div>
    </main>
  );
}

export function App() {
  const { api } = useApp();
  return <Boundary fallback={(reset) => <Crashed reset={reset} />}>{api ? <Shell /> : <Starting />}</Boundary>;
}
