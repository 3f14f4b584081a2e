import { useCallback, useEffect, useRef, useState } from 'react';
import type { Session } from '../lib/inspection';
import { useApi, useApp } from './app';

/**
 * A session's detail, loaded on demand and again whenever the event stream says it may have
 * changed: a write to it (from this screen or another), an AI job that ended, or a reopened
 * stream (whatever it said while closed is lost). Nothing polls.
 */
export function useSession(sessionId: string) {
  const api = useApi();
  const { events } = useApp();
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

  const changes = (events.changed[sessionId] ?? 0) + events.jobsEnded + events.opened;
  const seen = useRef(changes);
  useEffect(() => {
    if (changes === seen.current) return;
    seen.current = changes;
    void refresh();
  }, [changes, refresh]);

  return { session, setSession, error, refresh };
}
