import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

describe('log redaction (the safety net)', () => {
  it('censors secrets that slip into a log object, at the top level and one level down', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (l: string) => void lines.push(l) });
    const config = loadConfig({ SECRET_KEY: 'k'.repeat(40), DATABASE_URL: 'postgres://u:hunter2@db/app' });
    logger.info({ request: { email: 'a@b.io', password: 'pw-1', newPassword: 'pw-2' }, config }, 'oops');
    logger.info({ refreshToken: 'rt-secret', tokens: { accessToken: 'at-secret' } }, 'oops again');
    const out = lines.join('\n');
    for (const secret of ['pw-1', 'pw-2', 'k'.repeat(40), 'hunter2', 'rt-secret', 'at-secret']) {
      expect(out, secret).to.not.include(secret);
    }
    expect(out).to.include('a@b.io').and.include('[redacted]');
  });
});
