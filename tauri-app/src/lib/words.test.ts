import { describe, expect, it } from 'vitest';
import { translator } from '../i18n/translate';
import { auditChange, className, localName, measurementName, reasonText, recordKind, serverReason, stageLabel } from './words';

const ja = translator('ja');
const en = translator('en');

describe('a judgment reason as data, in words', () => {
  const failed = {
    reason: 'defect_probability = 1: fails defect_probability < 0.5',
    reason_code: 'threshold_failed',
    reason_params: {
      measurement: 'defect_probability',
      value: 1,
      rule: { ja: '不良の確率 < 0.5', en: 'Defect probability < 0.5' },
    },
  };

  it('words the code with its values in each language', () => {
    expect(reasonText(ja, 'ja', failed)).toBe('不良の確率 = 1: 基準（不良の確率 < 0.5）を満たしていません');
    expect(reasonText(en, 'en', failed)).toBe('Defect probability = 1: fails Defect probability < 0.5');
  });

  it('names the value a marking must carry, and the review band and confidence with the rule alone', () => {
    const marking = {
      reason_code: 'pattern_not_names',
      reason_params: { text: 'LOT B12-3456', expected: 'A12-3456', reference: '$target.batch_id' },
    };
    expect(reasonText(ja, 'ja', marking)).toBe('「LOT B12-3456」はロット番号（A12-3456）と一致しません');
    const band = { reason_code: 'in_review_band', reason_params: { measurement: 'defect_probability', value: 0.4, low: 0.3, high: 0.7, rule_result: 'OK' } };
    expect(reasonText(en, 'en', band)).toBe('Defect probability = 0.4 is in the review band 0.3–0.7 (by the rule alone: OK)');
  });

  it('shows an old English sentence only in English, and nothing for what it cannot word', () => {
    const old = { reason: 'bore_mm = 12: within bore_mm 11.95–12.05 mm' };
    expect(reasonText(en, 'en', old)).toBe(old.reason);
    expect(reasonText(ja, 'ja', old)).toBeNull();
    expect(reasonText(ja, 'ja', { reason_code: 'no_such_code', reason: 'x' })).toBeNull();
    expect(reasonText(ja, 'ja', null)).toBeNull();
  });
});

describe('identifiers in words', () => {
  it('names stages, measurements and classes, and falls back without inventing', () => {
    expect(stageLabel(ja, 'completed')).toBe('完了');
    expect(stageLabel(ja, 'a_new_stage')).toBe('処理中');
    expect(stageLabel(en, null)).toBe('Working');
    expect(measurementName(ja, 'bore_found')).toBe('穴の検出');
    expect(measurementName(ja, 'unknown_measure')).toBe('unknown_measure');
    expect(className(ja, 'ng')).toBe('不良品');
    expect(className(en, 'OK')).toBe('good');
    expect(className(ja, 'rework')).toBeNull();
  });

  it("gives a master's English name in English, and the name where there is none", () => {
    expect(localName('en', 'ブレーキキャリパー', 'Brake caliper')).toBe('Brake caliper');
    expect(localName('ja', 'ブレーキキャリパー', 'Brake caliper')).toBe('ブレーキキャリパー');
    expect(localName('en', '外観キズ', null)).toBe('外観キズ');
    expect(localName('en', '外観キズ', '')).toBe('外観キズ');
  });

  it('says what changed in an audit entry in words', () => {
    const at = (iso: string) => `at ${iso.slice(11, 16)}`;
    expect(auditChange(ja, 'ja', at, 'status', { before: 'human_review', after: 'completed' })).toBe('状態: 確認待ち → 完了');
    expect(auditChange(en, 'en', at, 'completed_at', { after: '2026-12-03T06:27:43.352582+00:00' })).toBe('completed: at 06:27');
    expect(auditChange(ja, 'ja', at, 'result', { before: null, after: 'NG' })).toBe('結果: — → 不合格');
  });

  it("names a refused record by what it is, and gives the server's message, not its JSON", () => {
    expect(recordKind(ja, 'inspection_session', 'INSERT')).toBe('検査 · 作成');
    expect(recordKind(en, 'something_new', 'MERGE')).toBe('Other record · send');
    expect(serverReason('{"detail": {"message": "version 3 is older"}}')).toBe('version 3 is older');
    expect(serverReason('{"detail": "not allowed"}')).toBe('not allowed');
    expect(serverReason('conflict: version 3 is older')).toBe('conflict: version 3 is older');
    expect(serverReason('{broken')).toBe('{broken');
    expect(serverReason(null)).toBe('—');
  });
});
