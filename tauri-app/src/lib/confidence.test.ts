import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { confidencePercent, sharePercent } from './inspection';

describe('confidence', () => {
  it('shows the model\'s own confidence as a percentage to one decimal', () => {
    expect(confidencePercent(0.934)).toBe('93.4%');
    expect(confidencePercent(0.5)).toBe('50%');
    expect(confidencePercent(0)).toBe('0%');
    expect(confidencePercent(1)).toBe('100%');
  });

  it('never rounds a value short of certainty to 100 %, nor one above nothing to 0 %', () => {
    expect(confidencePercent(0.9977)).toBe('99.8%');
    expect(confidencePercent(0.9996)).toBe('99.96%');
    expect(confidencePercent(0.99996)).toBe('99.996%');
    expect(confidencePercent(0.9999999)).toBe('99.9999%');
    expect(confidencePercent(1 - Number.EPSILON)).toBe('99.9999%');
    expect(confidencePercent(0.0004)).toBe('0.04%');
    expect(confidencePercent(1e-9)).toBe('0.0001%');
    for (let i = 1; i < 100_000; i += 7) {
      const shown = confidencePercent(i / 100_000);
      expect(shown).not.toBe('100%');
      expect(shown).not.toBe('0%');
    }
  });

  it('shows "—" where the model gave none, or gave something that is no confidence', () => {
    expect(confidencePercent(null)).toBe('—');
    expect(confidencePercent(undefined)).toBe('—');
    expect(confidencePercent(Number.NaN)).toBe('—');
    expect(confidencePercent(6.19)).toBe('—');
    expect(confidencePercent(-0.1)).toBe('—');
    expect(translator('en')('item.confidence', { pct: confidencePercent(null) })).toBe('Confidence —');
    expect(translator('ja')('item.confidence', { pct: confidencePercent(null) })).toBe('信頼度 —');
    expect(translator('ja')('item.confidence', { pct: confidencePercent(0.5) })).toBe('信頼度 50%');
  });

  it('shows a share of a count by the same rule: short of all is never 100 %', () => {
    expect(sharePercent(199, 200)).toBe('99.5%');
    expect(sharePercent(1999, 2000)).toBe('99.95%');
    expect(sharePercent(200, 200)).toBe('100%');
    expect(sharePercent(0, 7)).toBe('0%');
    expect(sharePercent(1, 3)).toBe('33.3%');
    expect(sharePercent(1, 2000)).toBe('0.1%');
    expect(sharePercent(0, 0)).toBe('—');
  });
});
