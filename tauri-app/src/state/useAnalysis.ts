import { useEffect, useState } from 'react';
import { ApiError, type Schemas } from '../api/client';
import { useI18n } from '../i18n';
import { AI_UNAVAILABLE_CODES } from '../i18n/errors';
import type { Progress } from './events';
import { useApi, useApp } from './app';

export type Job = Schemas['JobPublic'];

const JOB_ENDS = new Set<string>(['completed', 'failed', 'cancelled']);
/** The progress stages after which the job runner has nothing more to say about a job. */
const FINAL_STAGES = new Set<string>(['completed', 'failed']);

export interface Analysis {
  job: Job | null;
  progress: Progress | undefined;
  running: boolean;
  message: string | null;
  analyse: () => Promise<void>;
}

/**
 * Queue the item's pipeline and follow the job over the event stream: its progress as it comes,
 * and, once the stream says it ended, the job itself (read once, for the reason it failed). The
 * item's new state reaches the screen through `useSession`, which reloads when a job ends.
 */
export function useAnalysis(sessionId: string, itemId: string, imageId: string | null): Analysis {
  const { t, err } = useI18n();
  const api = useApi();
  const { events } = useApp();
  const [job, setJob] = useState<Job | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const progress = job ? events.progress[`job:${job.id}`] : undefined;
  const ended = progress !== undefined && FINAL_STAGES.has(progress.stage);

  // A new photo starts a new story.
  useEffect(() => setMessage(null), [imageId]);

  // Read the job when the stream says it ended, or when the stream reopened (its end may have
  // been said while nobody listened).
  useEffect(() => {
    if (!job || JOB_ENDS.has(job.status) || (!ended && events.opened <= 1)) return;
    let stopped = false;
    api.get('/jobs/{job_id}', { path: { job_id: job.id } }).then(
      (now) => {
        if (stopped) return;
        setJob(now);
        if (now.status === 'failed') setMessage(t('item.aiFailed', { message: now.error_message ?? '' }));
      },
      () => undefined, // the connection banner covers an unreachable sidecar
    );
    return () => {
      stopped = true;
    };
  }, [job?.id, job?.status, ended, events.opened, api, t]);

  const analyse = async () => {
    setMessage(null);
    try {
      setJob(
        await api.post('/sessions/{session_id}/items/{item_id}/analyse', {
          path: { session_id: sessionId, item_id: itemId },
          json: { priority: 'normal' },
        }),
      );
    } catch (caught) {
      if (caught instanceof ApiError && AI_UNAVAILABLE_CODES.has(caught.code)) setMessage(t('item.aiUnavailable'));
      else setMessage(err(caught));
    }
  };

  return { job, progress, running: job !== null && !JOB_ENDS.has(job.status), message, analyse };
}
