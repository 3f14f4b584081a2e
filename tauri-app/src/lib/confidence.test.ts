import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { confidencePercent } from './inspection';

describe('confidence', () => {
  it('shows the model\'s own confidence as a percentage', () => {
    expect(confidencePercent(0.934)).toBe('93%');
    expect(confidencePercent(0)).toBe('0%');
    expect(confidencePercent(1)).toBe('100%');
  });

  it('shows "—" where the model gave none, never a number', () => {
    expect(confidencePercent(null)).toBe('—');
    expect(confidencePercent(undefined)).toBe('—');
    expect(translator('en')('item.confidence', { pct: confidencePercent(null) })).toBe('Confidence —');
    expect(translator('ja')('item.confidence', { pct: confidencePercent(null) })).toBe('信頼度 —');
    expect(translator('ja')('item.confidence', { pct: confidencePercent(0.5) })).toBe('信頼度 50%');
  });
});
