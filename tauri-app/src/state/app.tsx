// App-wide state: the API client, the login, whether the sidecar answers, and its live events.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from 'react';
import { ApiClient, installClientId, type Schemas } from '../api/client';
import { discoverEndpoint, onEndpointChange, type Endpoint } from '../api/endpoint';
import { useEvents, type EventsState } from './events';

export type LoginInfo = Schemas['LoginPublic'];
export type ScanResult = Schemas['ScanPublic'];

const LOGIN_KEY = 'kensa.login';

function storedLogin(): LoginInfo | null {
  try {
    const raw = window.sessionStorage.getItem(LOGIN_KEY);
    if (!raw) return null;
    const login = JSON.parse(raw) as LoginInfo;
    if (new Date(login.expires_at).getTime() <= Date.now()) return null;
    return login;
  } catch {
    return null;
  }
}

interface AppState {
  endpoint: Endpoint | null;
  endpointError: string | null;
  retryEndpoint: () => void;
  api: ApiClient | null;
  login: LoginInfo | null;
  setLogin: (login: LoginInfo | null) => void;
  /** Why the user was sent back to the login screen (an error code), if they were. */
  loginNotice: string | null;
  /** The sidecar stopped answering (process gone, port closed). */
  lost: boolean;
  /** It answered again after having been lost (shown briefly). */
  recovered: boolean;
  events: EventsState;
  scan: ScanResult | null;
  setScan: (scan: ScanResult | null) => void;
  /** Whether the resume dialog was already offered since login. */
  resumeOffered: boolean;
  setResumeOffered: (offered: boolean) => void;
}

const AppContext = createContext<AppState | null>(null);

export function AppProvider({ children }: { children: ReactNode }) {
  const [endpoint, setEndpoint] = useState<Endpoint | null>(null);
  const [endpointError, setEndpointError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [login, setLoginState] = useState<LoginInfo | null>(storedLogin);
  const [loginNotice, setLoginNotice] = useState<string | null>(null);
  const [lost, setLost] = useState(false);
  const [recovered, setRecovered] = useState(false);
  const [generation, setGeneration] = useState(0);
  const [scan, setScan] = useState<ScanResult | null>(null);
  const [resumeOffered, setResumeOffered] = useState(false);
  const loginRef = useRef(login);
  loginRef.current = login;
  const lostRef = useRef(lost);
  lostRef.current = lost;

  useEffect(() => {
    let cancelled = false;
    setEndpointError(null);
    discoverEndpoint().then(
      (found) => !cancelled && setEndpoint(found),
      (err: unknown) => !cancelled && setEndpointError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      cancelled = true;
    };
  }, [attempt]);

  // The Tauri shell restarted a crashed sidecar: talk to the new one.
  useEffect(() => {
    let unlisten: (() => void) | null = null;
    let cancelled = false;
    void onEndpointChange((next) => {
      setEndpoint((old) => (old && old.baseUrl === next.baseUrl && old.token === next.token ? old : next));
    }).then((stop) => {
      if (cancelled) stop();
      else unlisten = stop;
    });
    return () => {
      cancelled = true;
      unlisten?.();
    };
  }, []);

  const setLogin = useCallback((next: LoginInfo | null) => {
    setLoginState(next);
    setResumeOffered(false);
    if (next) setLoginNotice(null);
    try {
      if (next) window.sessionStorage.setItem(LOGIN_KEY, JSON.stringify(next));
      else window.sessionStorage.removeItem(LOGIN_KEY);
    } catch {
      // Without storage the login lasts until the page reloads.
    }
  }, []);

  const markReachable = useCallback((reachable: boolean) => {
    if (reachable && lostRef.current) {
      setLost(false);
      setRecovered(true);
      // A sidecar that came back may have lost our stream: open a fresh one.
      setGeneration((g) => g + 1);
    } else if (!reachable && !lostRef.current) {
      setLost(true);
      setRecovered(false);
    }
  }, []);

  const api = useMemo(() => {
    if (!endpoint) return null;
    return new ApiClient({
      baseUrl: endpoint.baseUrl,
      token: endpoint.token,
      session: () => loginRef.current?.token ?? null,
      clientId: installClientId(),
      onReachability: markReachable,
      onLoginInvalid: (code) => {
        setLogin(null);
        setLoginNotice(code);
      },
    });
  }, [endpoint, markReachable, setLogin]);

  // Is the sidecar there? /health needs no token and no login.
  const probe = useCallback(async () => {
    if (!endpoint) return;
    try {
      const response = await fetch(`${endpoint.baseUrl}/health`, {
        cache: 'no-store',
        signal: AbortSignal.timeout(3000),
      });
      markReachable(response.ok);
    } catch {
      markReachable(false);
    }
  }, [endpoint, markReachable]);

  // While lost, keep asking until it answers.
  useEffect(() => {
    if (!lost) return;
    const timer = setInterval(() => void probe(), 2000);
    return () => clearInterval(timer);
  }, [lost, probe]);

  useEffect(() => {
    if (!recovered) return;
    const timer = setTimeout(() => setRecovered(false), 4000);
    return () => clearTimeout(timer);
  }, [recovered]);

  const eventsUrl = useMemo(() => (api ? () => api.eventsUrl() : null), [api]);
  const events = useEvents(eventsUrl, () => void probe(), generation);

  const value = useMemo<AppState>(
    () => ({
      endpoint,
      endpointError,
      retryEndpoint: () => setAttempt((a) => a + 1),
      api,
      login,
      setLogin,
      loginNotice,
      lost,
      recovered,
      events,
      scan,
      setScan,
      resumeOffered,
      setResumeOffered,
    }),
    [endpoint, endpointError, api, login, setLogin, loginNotice, lost, recovered, events, scan, resumeOffered],
  );
  return <AppContext.Provider value={value}>{children}</AppContext.Provider>;
}

export function useApp(): AppState {
  const value = useContext(AppContext);
  if (!value) throw new Error('useApp outside AppProvider');
  return value;
}

/** The API client, for screens that only render once it exists. */
export function useApi(): ApiClient {
  const { api } = useApp();
  if (!api) throw new Error('useApi before the endpoint is known');
  return api;
}
