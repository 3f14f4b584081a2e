// Where the sidecar is and its launch token.
//
// - In the Tauri shell: the `sidecar_endpoint` command returns `{port, token}` (the shell made the
//   token and read the port from the sidecar's ready line). It may not be ready the moment the
//   webview loads, so the call is retried for a while.
// - In a plain browser the sidecar served this page itself, with the token in
//   `<meta name="kensa-token">` (see sidecar/ui.py): the API is on the page's own origin.
// - Under `npm run dev`, VITE_KENSA_URL and VITE_KENSA_TOKEN name a sidecar started by hand.

export interface Endpoint {
  baseUrl: string;
  token: string;
  mode: 'tauri' | 'browser' | 'dev';
}

export class EndpointError extends Error {}

interface TauriEndpoint {
  port: number;
  token: string;
  baseUrl?: string;
}

function fromShell(found: TauriEndpoint): Endpoint {
  return { baseUrl: found.baseUrl ?? `http://127.0.0.1:${found.port}`, token: found.token, mode: 'tauri' };
}

export function isTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function fromTauri(attempts = 40): Promise<Endpoint> {
  const { invoke } = await import('@tauri-apps/api/core');
  let last: unknown = null;
  for (let i = 0; i < attempts; i++) {
    try {
      const found = await invoke<TauriEndpoint>('sidecar_endpoint');
      if (found && typeof found.port === 'number' && found.token) return fromShell(found);
    } catch (err) {
      last = err;
    }
    await sleep(250);
  }
  throw new EndpointError(`the kensa service did not start: ${String(last)}`);
}

export function fromDocument(doc: Document, origin: string): Endpoint | null {
  const meta = doc.querySelector<HTMLMetaElement>('meta[name="kensa-token"]');
  if (meta?.content) return { baseUrl: origin, token: meta.content, mode: 'browser' };
  return null;
}

export async function discoverEndpoint(): Promise<Endpoint> {
  if (isTauri()) return fromTauri();
  const served = fromDocument(document, window.location.origin);
  if (served) return served;
  const env = import.meta.env;
  const url = env.VITE_KENSA_URL as string | undefined;
  const token = env.VITE_KENSA_TOKEN as string | undefined;
  if (url && token) return { baseUrl: url, token, mode: 'dev' };
  throw new EndpointError('no kensa service to talk to (no token in this page)');
}

/**
 * In the Tauri shell: be told when the shell restarts the sidecar (new port, new token), so the
 * UI carries on against the new one. Returns the unsubscribe function (a no-op elsewhere).
 */
export async function onEndpointChange(callback: (endpoint: Endpoint) => void): Promise<() => void> {
  if (!isTauri()) return () => undefined;
  const { listen } = await import('@tauri-apps/api/event');
  return listen<TauriEndpoint>('sidecar-ready', (event) => {
    if (event.payload && event.payload.token) callback(fromShell(event.payload));
  });
}

/** What the shell says of its sidecar while the UI waits for it (`sidecar_status`). */
export interface ShellStatus {
  state: 'starting' | 'ready' | 'restarting' | 'failed' | 'stopped';
  attempt?: number;
  retryInMs?: number;
}

/**
 * In the Tauri shell: the sidecar's state now and on every change, for the start screen's stage
 * line. Returns the unsubscribe function (a no-op elsewhere, where there is no stage to show).
 */
export async function onShellStatus(callback: (status: ShellStatus) => void): Promise<() => void> {
  if (!isTauri()) return () => undefined;
  const [{ invoke }, { listen }] = await Promise.all([import('@tauri-apps/api/core'), import('@tauri-apps/api/event')]);
  const stop = await listen<ShellStatus>('sidecar-status', (event) => callback(event.payload));
  try {
    callback(await invoke<ShellStatus>('sidecar_status'));
  } catch {
    // An older shell without the command: the events alone.
  }
  return stop;
}

let shownReported = false;

/**
 * In the Tauri shell: tell it once which first screen is on the glass ("login" or "setup"); it
 * logs the time since launch, which is what `scripts/bench start` measures as login_s.
 */
export function reportFirstScreen(screen: 'login' | 'setup'): void {
  if (shownReported || !isTauri()) return;
  shownReported = true;
  void import('@tauri-apps/api/core')
    .then(({ invoke }) => invoke('ui_shown', { screen }))
    .catch(() => undefined);
}
