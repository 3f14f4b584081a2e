import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { navigate, parseRoute, routeHash, subscribe } from './route';

// The browser's own window, as far as routing uses it: the hash, and hashchange listeners that
// the test fires itself (a browser fires them later, in a task of their own).
class FakeWindow {
  location = { hash: '' };
  private handlers = new Set<() => void>();
  addEventListener(_type: 'hashchange', handler: () => void) {
    this.handlers.add(handler);
  }
  removeEventListener(_type: 'hashchange', handler: () => void) {
    this.handlers.delete(handler);
  }
  fireHashchange() {
    for (const handler of this.handlers) handler();
  }
}

let fake: FakeWindow;
beforeEach(() => {
  fake = new FakeWindow();
  (globalThis as { window?: unknown }).window = fake;
});
afterEach(() => {
  delete (globalThis as { window?: unknown }).window;
});

describe('routes', () => {
  it('a navigation reaches the screens before the browser’s hashchange', () => {
    const seen: string[] = [];
    const stop = subscribe(() => seen.push(window.location.hash));
    navigate({ name: 'session', sessionId: 's-1', itemId: 'i-1' });
    // Told at once, with the new hash already in place.
    expect(seen).toEqual(['#/session/s-1/item/i-1']);
    fake.fireHashchange();
    expect(seen).toEqual(['#/session/s-1/item/i-1', '#/session/s-1/item/i-1']);
    stop();
    navigate({ name: 'history' });
    fake.fireHashchange();
    expect(seen).toHaveLength(2);
    expect(window.location.hash).toBe('#/history');
  });

  it('every route survives its own hash', () => {
    const routes = [
      { name: 'scan' },
      { name: 'target' },
      { name: 'session', sessionId: 'a b', itemId: null },
      { name: 'session', sessionId: 's', itemId: 'i/1' },
      { name: 'summary', sessionId: 's', from: 'session' },
      { name: 'summary', sessionId: 's', from: 'history' },
      { name: 'history' },
      { name: 'dashboard' },
      { name: 'settings' },
    ] as const;
    for (const route of routes) expect(parseRoute(routeHash(route))).toEqual(route);
    expect(parseRoute('#/nowhere')).toEqual({ name: 'scan' });
  });
});
