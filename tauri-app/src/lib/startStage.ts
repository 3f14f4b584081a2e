// The start screen's line: what the shell says its sidecar is doing, never a made-up percentage.
import type { ShellStatus } from '../api/endpoint';
import type { Translate } from '../i18n/translate';

export function startStage(shell: ShellStatus | null, t: Translate): string {
  if (shell?.state === 'starting') return t('app.stageStarting');
  if (shell?.state === 'restarting') {
    return t('app.stageRestarting', {
      attempt: shell.attempt ?? 1,
      seconds: Math.max(1, Math.ceil((shell.retryInMs ?? 0) / 1000)),
    });
  }
  // Ready (the UI is fetching its first screen), or no shell at all (a browser).
  return t('app.starting');
}
