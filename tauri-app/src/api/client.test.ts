import { describe, expect, it } from 'vitest';
import {
  ApiClient,
  ApiError,
  buildPath,
  buildQuery,
  checkPhotoSize,
  installClientId,
  MAX_IMAGE_BYTES,
  photoForm,
} from './client';
import { fromDocument } from './endpoint';

interface Seen {
  url: string;
  init: RequestInit;
}

function fakeFetch(respond: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const fn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    seen.push({ url, init: init ?? {} });
    return respond(url, init ?? {});
  }) as typeof fetch;
  return { fn, seen };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

describe('the typed client', () => {
  it('sends the launch token and the login, fills path and query', async () => {
    const { fn, seen } = fakeFetch(() => json({ rows: [], total: 0, page: 2, page_size: 20 }));
    const client = new ApiClient({ baseUrl: 'http://127.0.0.1:9/', token: 'T0K', fetch: fn, session: () => 'LOGIN' });
    const found = await client.get('/history', { query: { batch: 'A 1', page: 2, product: undefined } });
    expect(found.total).toBe(0);
    expect(seen[0]?.url).toBe('http://127.0.0.1:9/history?batch=A+1&page=2');
    const headers = seen[0]?.init.headers as Record<string, string>;
    expect(headers.Authorization).toBe('Bearer T0K');
    expect(headers['X-Kensa-Session']).toBe('LOGIN');
    expect(seen[0]?.init.method).toBe('GET');
  });

  it('names this install in X-Kensa-Client on every call, logins included', async () => {
    const { fn, seen } = fakeFetch(() => json({ token: 't', expires_at: 'x', user: {} }));
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn, clientId: 'install-1234abcd' });
    await client.post('/auth/login', { json: { username: 'tanaka', password: 'pw' } });
    expect((seen[0]?.init.headers as Record<string, string>)['X-Kensa-Client']).toBe('install-1234abcd');
  });

  it('makes the install id once and keeps it', () => {
    const kept = new Map<string, string>();
    const storage = { getItem: (k: string) => kept.get(k) ?? null, setItem: (k: string, v: string) => void kept.set(k, v) };
    const first = installClientId(storage);
    expect(first).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect(installClientId(storage)).toBe(first);
    kept.set('kensa.client-id', 'bad id!');
    expect(installClientId(storage)).not.toBe('bad id!');
    const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('denied'); } };
    expect(installClientId(broken)).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
  });

  it('posts JSON bodies and path parameters', async () => {
    const { fn, seen } = fakeFetch(() => json({ id: 'v1' }, 201));
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn });
    await client.post('/sessions/{session_id}/items/{item_id}/verification', {
      path: { session_id: 's/1', item_id: 'item-bore' },
      json: { final_result: 'OK', verification_time: 1 },
    });
    expect(seen[0]?.url).toBe('http://x/sessions/s%2F1/items/item-bore/verification');
    expect(JSON.parse(String(seen[0]?.init.body))).toEqual({ final_result: 'OK', verification_time: 1 });
    expect((seen[0]?.init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it('turns the API error shape into ApiError with its code and detail', async () => {
    const { fn } = fakeFetch(() =>
      json({ error: { code: 'account_locked', message: 'locked', detail: { locked_until: '2026-11-27T08:05:00+00:00' } } }, 423),
    );
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn });
    const err = await client.post('/auth/login', { json: { username: 'a', password: 'b' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('account_locked');
    expect((err as ApiError).status).toBe(423);
    expect((err as ApiError).detail).toEqual({ locked_until: '2026-11-27T08:05:00+00:00' });
  });

  it('names a 404 without a body not_found, and other bare statuses by number', async () => {
    let status = 404;
    const { fn } = fakeFetch(() => new Response('<html>', { status }));
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn });
    const connect = { json: { server_url: 'http://s', token: 't', replace_server_url: null } };
    expect(((await client.post('/sync/connect', connect).catch((e: unknown) => e)) as ApiError).code).toBe('not_found');
    status = 502;
    expect(((await client.get('/sync/status').catch((e: unknown) => e)) as ApiError).code).toBe('http_502');
  });

  it('reports an unreachable sidecar as sidecar_unreachable and tells the app', async () => {
    const reach: boolean[] = [];
    const { fn } = fakeFetch(() => Promise.reject(new TypeError('Failed to fetch')));
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn, onReachability: (r) => reach.push(r) });
    const err = (await client.get('/health').catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe('sidecar_unreachable');
    expect(err.isNetwork).toBe(true);
    expect(reach).toEqual([false]);
  });

  it('times out a call that never answers', async () => {
    const fn = ((_: RequestInfo | URL, init?: RequestInit) =>
      new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))))) as typeof fetch;
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn });
    const err = (await client.get('/health', { timeoutMs: 20 }).catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe('timeout');
  });

  it('sends the user back to login when the login is no longer valid', async () => {
    const codes: string[] = [];
    const { fn } = fakeFetch(() => json({ error: { code: 'login_invalid', message: 'x', detail: null } }, 401));
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn, onLoginInvalid: (c) => codes.push(c) });
    await client.get('/sessions/interrupted').catch(() => undefined);
    expect(codes).toEqual(['login_invalid']);
  });

  it('handles 204 and uploads photos as multipart field "file"', async () => {
    const { fn, seen } = fakeFetch((url) => (url.endsWith('/logout') ? new Response(null, { status: 204 }) : json({ id: 'img' }, 201)));
    const client = new ApiClient({ baseUrl: 'http://x', token: 't', fetch: fn });
    expect(await client.post('/auth/logout')).toBeUndefined();
    const form = photoForm(new Blob([new Uint8Array([0xff, 0xd8, 0xff])], { type: 'image/jpeg' }));
    await client.post('/sessions/{session_id}/items/{item_id}/images', { path: { session_id: 's', item_id: 'i' }, body: form });
    const body = seen[1]?.init.body as FormData;
    expect(body.get('file')).toBeInstanceOf(Blob);
    expect((seen[1]?.init.headers as Record<string, string>)['Content-Type']).toBeUndefined();
  });

  it('refuses a photo over 20 MB before sending it', () => {
    const big = new Blob([new Uint8Array(MAX_IMAGE_BYTES + 1)]);
    expect(() => checkPhotoSize(big)).toThrowError(ApiError);
    try {
      checkPhotoSize(big);
    } catch (e) {
      expect((e as ApiError).code).toBe('payload_too_large');
    }
    expect(() => checkPhotoSize(new Blob([new Uint8Array(10)]))).not.toThrow();
  });

  it('opens the events with a single-use ticket asked for with the token in the header, never the token in the URL', async () => {
    const { fn, seen } = fakeFetch(() => json({ ticket: 't+k/1', expires_in_s: 30 }));
    const client = new ApiClient({ baseUrl: 'http://127.0.0.1:5000', token: 'a+b/c', fetch: fn });
    const url = await client.eventsUrl();
    expect(url).toBe('http://127.0.0.1:5000/events?ticket=t%2Bk%2F1');
    expect(url).not.toContain('a%2Bb');
    expect(seen[0]?.url).toBe('http://127.0.0.1:5000/events/ticket');
    expect(seen[0]?.init.method).toBe('POST');
    expect((seen[0]?.init.headers as Record<string, string>).Authorization).toBe('Bearer a+b/c');
  });

  it('path and query helpers', () => {
    expect(buildPath('/a/{x}/b/{y}', { x: 1, y: 'é' })).toBe('/a/1/b/%C3%A9');
    expect(() => buildPath('/a/{x}', {})).toThrow(/missing path parameter x/);
    expect(buildQuery({ a: '', b: null, c: 0, d: false })).toBe('?c=0&d=false');
    expect(buildQuery(undefined)).toBe('');
  });

  it('reads the launch token the sidecar injected into the page', () => {
    const doc = {
      querySelector: (sel: string) => (sel.includes('kensa-token') ? { content: 'xyz' } : null),
    } as unknown as Document;
    expect(fromDocument(doc, 'http://127.0.0.1:4000')).toEqual({ baseUrl: 'http://127.0.0.1:4000', token: 'xyz', mode: 'browser' });
    const empty = { querySelector: () => null } as unknown as Document;
    expect(fromDocument(empty, 'http://x')).toBeNull();
  });
});
