import { describe, expect, it } from 'vitest';
import { countTicks } from './BarChart';

describe('the chart axis counts whole inspections', () => {
  it('never shows a fraction, and reaches the largest bar', () => {
    for (const value of [0, 1, 2, 3, 4, 5, 7, 9, 13, 24, 99, 250, 1234]) {
      const ticks = countTicks(value);
      expect(ticks.every(Number.isInteger), `${value}: ${ticks.join(',')}`).toBe(true);
      expect(ticks[0]).toBe(0);
      expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(Math.max(1, value));
      expect(ticks.length).toBeLessThanOrEqual(6);
    }
    expect(countTicks(3)).toEqual([0, 1, 2, 3]);
    expect(countTicks(5)).toEqual([0, 2, 4, 6]);
  });
});
