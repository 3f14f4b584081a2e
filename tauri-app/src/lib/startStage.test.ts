import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { startStage } from './startStage';

describe('startStage', () => {
  const en = translator('en');
  const ja = translator('ja');

  it('names the stage the shell reports', () => {
    expect(startStage({ state: 'starting' }, en)).toBe('Starting the kensa service and opening its data…');
    expect(startStage({ state: 'ready' }, en)).toBe('Connecting to the kensa service…');
    expect(startStage(null, ja)).toBe('kensa サービスに接続しています…');
  });

  it('says when a restart comes, rounded up to whole seconds', () => {
    expect(startStage({ state: 'restarting', attempt: 2, retryInMs: 1500 }, en)).toBe(
      'The kensa service stopped; starting it again in 2 s (attempt 2)…',
    );
    expect(startStage({ state: 'restarting', attempt: 1, retryInMs: 500 }, ja)).toBe(
      'kensa サービスが停止しました。1 秒後に再起動します（1 回目）…',
    );
  });
});
