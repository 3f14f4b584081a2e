// Hash routes: the sidecar serves one index.html, and a reload keeps the inspector's place.
import { useEffect, useState } from 'react';

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

export function navigate(route: Route): void {
  const hash = routeHash(route);
  if (window.location.hash !== hash) window.location.hash = hash;
}

export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
