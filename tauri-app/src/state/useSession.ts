import { useCallback, useEffect, useRef, useState } from 'react';
import type { Session } from '../lib/inspection';
import { useApi } from './app';

const BUSY = new Set(['captured', 'ai_running']);

/** A session's detail, refreshed on demand and every 2 s while an item waits for the AI. */
export function useSession(sessionId: string) {
  const api = useApi();
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<unknown>(null);
  const current = useRef(sessionId);
  current.current = sessionId;

  const refresh = useCallback(async () => {
    try {
      const detail = await api.get('/sessions/{session_id}', { path: { session_id: sessionId } });
      if (current.current === sessionId) {
        setSession(detail);
        setError(null);
      }
      return detail;
    } catch (caught) {
      if (current.current === sessionId) setError(caught);
      return null;
    }
  }, [api, sessionId]);

  useEffect(() => {
    setSession(null);
    void refresh();
  }, [refresh]);

  const waiting = session?.items.some((i) => BUSY.has(i.status)) ?? false;
  useEffect(() => {
    if (!waiting) return;
    const timer = setInterval(() => void refresh(), 2000);
    return () => clearInterval(timer);
  }, [waiting, refresh]);

  return { session, setSession, error, refresh };
}
