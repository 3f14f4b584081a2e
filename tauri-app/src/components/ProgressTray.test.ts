import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { progressDetail } from './ProgressTray';

describe('progress detail', () => {
  const t = translator('en');

  it('shows no number while the sidecar has measured nothing to estimate from', () => {
    expect(progressDetail(t, null, null)).toBeUndefined();
  });

  it('shows the time left where it was estimated, else the percentage', () => {
    expect(progressDetail(t, 40, 1.2)).toBe('about 2 s left');
    expect(progressDetail(t, 40, null)).toBe('40%');
    expect(progressDetail(t, 100, 0)).toBe('100%');
  });

  it('never shows work short of done as 100 %', () => {
    expect(progressDetail(t, 99.6, null)).toBe('99%');
    expect(progressDetail(t, 0.4, null)).toBe('0%');
  });
});
