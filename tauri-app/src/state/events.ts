// The sidecar's server-sent events: the sync summary (every 2 s), progress of long work, and
// which inspections changed. They are the UI's one refresh path: nothing polls the API.
import { useEffect, useRef, useState } from 'react';
import type { Received, SyncSummary } from '../lib/syncStatus';

export interface Progress {
  kind: 'job' | 'warmup' | 'sync';
  id: string;
  stage: string;
  /** Measured progress; null while the sidecar has no measured durations to estimate it from. */
  percentage: number | null;
  eta_s: number | null;
  updated_at: number;
}

const DONE_STAGES = new Set(['completed', 'done', 'failed', 'cancelled']);
const KEEP_DONE_MS = 3000;
const STALE_MS = 60_000;

export function isDone(p: Progress): boolean {
  return (p.percentage ?? 0) >= 100 || DONE_STAGES.has(p.stage);
}

/** Drop finished entries after a moment, and entries no producer has updated for a minute. */
export function prune(progress: Record<string, Progress>, now: number): Record<string, Progress> {
  const kept: Record<string, Progress> = {};
  for (const [key, p] of Object.entries(progress)) {
    const age = now - p.updated_at;
    if (isDone(p) ? age < KEEP_DONE_MS : age < STALE_MS) kept[key] = p;
  }
  return kept;
}

/** The progress stages after which a job's inspection has changed for good. */
const JOB_FINAL_STAGES = new Set(['completed', 'failed']);

export interface EventsState {
  sync: Received | null;
  progress: Record<string, Progress>;
  /** How often each inspection (by id) was changed since the stream opened. */
  changed: Record<string, number>;
  /** How many AI jobs ended since the page opened (each changed an item). */
  jobsEnded: number;
  /** How many times the stream opened: after a reopen, what was said meanwhile is lost. */
  opened: number;
  /** The stream is open and heard from within the last few seconds. */
  live: boolean;
}

/**
 * Subscribe to the stream `openUrl` gives a URL for (null: not yet known); it is asked again for
 * every (re)connect, since each URL opens the stream once (a single-use ticket). `onTrouble` is
 * called when the stream errors or goes quiet, so the app can check whether the sidecar is gone.
 */
export function useEvents(openUrl: (() => Promise<string>) | null, onTrouble: () => void, generation: number): EventsState {
  const [sync, setSync] = useState<Received | null>(null);
  const [progress, setProgress] = useState<Record<string, Progress>>({});
  const [changed, setChanged] = useState<Record<string, number>>({});
  const [jobsEnded, setJobsEnded] = useState(0);
  const [opened, setOpened] = useState(0);
  const [live, setLive] = useState(false);
  const lastHeard = useRef(0);
  const trouble = useRef(onTrouble);
  trouble.current = onTrouble;

  useEffect(() => {
    if (!openUrl || typeof EventSource === 'undefined') return;
    let source: EventSource | null = null;
    let closed = false;
    let reopenTimer: ReturnType<typeof setTimeout> | undefined;
    const reopen = (ms: number) => {
      clearTimeout(reopenTimer);
      reopenTimer = setTimeout(() => void open(), ms);
    };
    const open = async () => {
      if (closed) return;
      let url: string;
      try {
        url = await openUrl();
      } catch {
        setLive(false);
        trouble.current();
        reopen(2000);
        return;
      }
      if (closed) return;
      source = new EventSource(url);
      source.onopen = () => setOpened((n) => n + 1);
      source.addEventListener('sync', (e) => {
        lastHeard.current = Date.now();
        setLive(true);
        try {
          const summary = JSON.parse((e as MessageEvent<string>).data) as SyncSummary;
          setSync({ summary, receivedAt: Date.now() });
        } catch {
          // A malformed event is skipped; the next one comes in 2 s.
        }
      });
      source.addEventListener('progress', (e) => {
        lastHeard.current = Date.now();
        try {
          const data = JSON.parse((e as MessageEvent<string>).data) as Omit<Progress, 'updated_at'>;
          setProgress((old) => ({
            ...prune(old, Date.now()),
            [`${data.kind}:${data.id}`]: { ...data, updated_at: Date.now() },
          }));
          if (data.kind === 'job' && JOB_FINAL_STAGES.has(data.stage)) setJobsEnded((n) => n + 1);
        } catch {
          // As above.
        }
      });
      source.addEventListener('changed', (e) => {
        lastHeard.current = Date.now();
        try {
          const { session_id: id } = JSON.parse((e as MessageEvent<string>).data) as { session_id: string };
          if (typeof id === 'string') setChanged((old) => ({ ...old, [id]: (old[id] ?? 0) + 1 }));
        } catch {
          // As above.
        }
      });
      source.onerror = () => {
        setLive(false);
        trouble.current();
        // The browser's own reconnect would present the spent ticket again: close, and open a
        // fresh stream with a new ticket a moment later.
        source?.close();
        source = null;
        reopen(1000);
      };
    };
    void open();
    const watchdog = setInterval(() => {
      setProgress((old) => {
        const pruned = prune(old, Date.now());
        return Object.keys(pruned).length === Object.keys(old).length ? old : pruned;
      });
      if (lastHeard.current && Date.now() - lastHeard.current > 7000) {
        setLive(false);
        trouble.current();
      }
    }, 1000);
    return () => {
      closed = true;
      clearInterval(watchdog);
      clearTimeout(reopenTimer);
      source?.close();
    };
  }, [openUrl, generation]);

  return { sync, progress, changed, jobsEnded, opened, live };
}
