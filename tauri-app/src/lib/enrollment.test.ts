import { describe, expect, it } from 'vitest';
import { parseEnrollmentQr } from './enrollment';

describe('parseEnrollmentQr', () => {
  it('reads the server and code the server put in the QR', () => {
    expect(parseEnrollmentQr('kensa://enroll?server=https%3A%2F%2Fkensa.example%3A8443&code=ABCDE-FGHJK\n')).toEqual({
      serverUrl: 'https://kensa.example:8443',
      code: 'ABCDE-FGHJK',
    });
  });

  it('is null for anything else, so a half-typed scan fills nothing', () => {
    expect(parseEnrollmentQr('{"product_id": "BRK-100"}')).toBeNull();
    expect(parseEnrollmentQr('kensa://enroll?server=https%3A%2F%2Fa')).toBeNull();
    expect(parseEnrollmentQr('kensa://enroll?code=ABCDE-FGHJK')).toBeNull();
    expect(parseEnrollmentQr('https://kensa.example/?code=ABCDE-FGHJK')).toBeNull();
  });
});
