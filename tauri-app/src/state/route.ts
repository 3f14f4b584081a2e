// Hash routes: the sidecar serves one index.html, and a reload keeps the inspector's place.
import { useEffect, useMemo, useState } from 'react';

export type Route =
  | { name: 'scan' }
  | { name: 'target' }
  | { name: 'session'; sessionId: string; itemId: string | null }
  | { name: 'summary'; sessionId: string; from: 'session' | 'history' }
  | { name: 'history' }
  | { name: 'dashboard' }
  | { name: 'settings' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [head, a, b, c] = parts;
  switch (head) {
    case 'target':
      return { name: 'target' };
    case 'session':
      if (a && b === 'summary') return { name: 'summary', sessionId: a, from: 'session' };
      if (a) return { name: 'session', sessionId: a, itemId: b === 'item' && c ? c : null };
      return { name: 'scan' };
    case 'history':
      if (a) return { name: 'summary', sessionId: a, from: 'history' };
      return { name: 'history' };
    case 'dashboard':
      return { name: 'dashboard' };
    case 'settings':
      return { name: 'settings' };
    default:
      return { name: 'scan' };
  }
}

export function routeHash(route: Route): string {
  switch (route.name) {
    case 'session':
      return route.itemId
        ? `#/session/${encodeURIComponent(route.sessionId)}/item/${encodeURIComponent(route.itemId)}`
        : `#/session/${encodeURIComponent(route.sessionId)}`;
    case 'summary':
      return route.from === 'history'
        ? `#/history/${encodeURIComponent(route.sessionId)}`
        : `#/session/${encodeURIComponent(route.sessionId)}/summary`;
    default:
      return `#/${route.name}`;
  }
}

// Screens that follow the route. A navigation tells them at once, not when the browser's
// hashchange event arrives: a screen that clears its own state and navigates away (a started
// inspection clears the scan and opens the session) must leave in the same render, or it renders
// once without that state. The target screen did, and sent the inspector back to scanning.
const listeners = new Set<() => void>();

/** Calls `listener` whenever the route may have changed; returns the unsubscribe. */
export function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener('hashchange', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('hashchange', listener);
  };
}

export function navigate(route: Route): void {
  const hash = routeHash(route);
  if (window.location.hash !== hash) window.location.hash = hash;
  for (const listener of [...listeners]) listener();
}

export function useRoute(): Route {
  // The hash, not the parsed route, is the state: the same hash again (navigate, then the
  // browser's hashchange for it) renders nothing new.
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => subscribe(() => setHash(window.location.hash)), []);
  return useMemo(() => parseRoute(hash), [hash]);
}
