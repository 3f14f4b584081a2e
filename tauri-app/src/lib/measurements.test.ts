import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { formatNumber, MAX_TEXT, measurementRows } from './measurements';

const ja = translator('ja');
const en = translator('en');

describe('measurements', () => {
  it('gives numbers their unit and a precision that suits their size', () => {
    const rows = measurementRows('en', en, { bore_mm: 12.000143797, anomaly_score: 9.788858, p: 0.934, area: 0.0765306, n: 3, big: 1234.56 }, { bore_mm: 'mm' }, []);
    expect(Object.fromEntries(rows.map((r) => [r.key, r.value]))).toEqual({
      bore_mm: '12.00 mm',
      anomaly_score: '9.789',
      p: '0.934',
      area: '0.07653',
      n: '3',
      big: '1,235',
    });
    expect(formatNumber('en', 0.00001234)).toBe('1.23e-5');
    expect(formatNumber('en', Number.NaN)).toBe('—');
  });

  it('says yes and no in words, in the UI\'s language', () => {
    expect(measurementRows('ja', ja, { bore_found: true, ok: false }, {}, []).map((r) => r.value)).toEqual(['はい', 'いいえ']);
    expect(measurementRows('en', en, { bore_found: true, ok: false }, {}, []).map((r) => r.value)).toEqual(['Yes', 'No']);
  });

  it('shows a position drawn on the photo as such, never as a list of fractions', () => {
    const bbox = [0.42857142857142855, 0.5714285714285714, 0.9285714285714286, 0.9642857142857143];
    const [row] = measurementRows('ja', ja, { anomaly_bbox: bbox }, {}, ['anomaly_bbox']);
    expect(row).toEqual({ key: 'anomaly_bbox', value: '写真に表示', kind: 'drawn' });
    // Not drawn (no overlay for it): a short series is listed at its precision.
    const [listed] = measurementRows('en', en, { anomaly_peak: bbox.slice(0, 2) }, {}, []);
    expect(listed?.value).toBe('0.4286, 0.5714');
  });

  it('keeps the longest values a pipeline can give short', () => {
    const map = Array.from({ length: 224 }, () => Array.from({ length: 224 }, () => 0.123456789));
    const text = 'X'.repeat(5000);
    const rows = measurementRows('en', en, { map, text, lines: [{ text: 'LOT', box: [[1, 2]] }], none: null, empty: [] }, {}, []);
    const byKey = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    expect(byKey.map).toBe('50176 values');
    expect(byKey.text).toHaveLength(MAX_TEXT + 1);
    expect(byKey.lines).toBe('3 values');
    expect(byKey.none).toBe('—');
    expect(byKey.empty).toBe('—');
    for (const r of rows) expect(r.value.length).toBeLessThanOrEqual(MAX_TEXT + 1);
  });
});
