// The enrollment QR `kensa-server device add --qr` shows: kensa://enroll?server=<url>&code=<code>.
const QR_PREFIX = 'kensa://enroll?';

/** Server URL and code from an enrollment QR's text; null for anything else. */
export function parseEnrollmentQr(text: string): { serverUrl: string; code: string } | null {
  const trimmed = text.trim();
  if (!trimmed.startsWith(QR_PREFIX)) return null;
  const query = new URLSearchParams(trimmed.slice(QR_PREFIX.length));
  const serverUrl = query.get('server');
  const code = query.get('code');
  return serverUrl && code ? { serverUrl, code } : null;
}
