/**
 * Operator defaults of issue 16: in production the server refuses to start on a port that may sit
 * behind a proxy without TRUSTED_PROXIES said explicitly (`none` allowed), and warns about
 * INTROSPECTION_AUTH=none. (The GRPC_TLS_CLIENT_AUTH default is tested with mutual TLS, in
 * test/identity.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ConfigError, loadConfig, productionWarnings } from '../src/config.js';
import { createTestDatabase } from './helpers/postgres.js';
import { runUntilExit, spawnServer } from './helpers/process.js';

const failure = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('operator defaults in production', function () {
  this.timeout(60_000);
  const SECRET_KEY = randomBytes(48).toString('base64');
  const prod = { NODE_ENV: 'production', SECRET_KEY };
  const exposed = { ...prod, GRPC_HOST: '0.0.0.0', GRPC_ALLOW_PLAINTEXT: 'true' };

  describe('TRUSTED_PROXIES', () => {
    it('must be set, unless the port is plaintext on loopback: unset and empty are refused, each named', () => {
      expect(failure(exposed)).to.match(/^TRUSTED_PROXIES: must be set: .*`none`/m);
      expect(failure({ ...exposed, TRUSTED_PROXIES: '' })).to.match(/^TRUSTED_PROXIES: is empty: .*`none`/m);
      expect(failure({ ...exposed, TRUSTED_PROXIES: '  ' })).to.match(/^TRUSTED_PROXIES: is empty/m);
      // TLS on loopback is still a port a proxy (a sidecar) may stand in front of
      expect(failure({ ...prod, GRPC_TLS_CERT_FILE: 'tls.pem', GRPC_TLS_KEY_FILE: 'tls.key' })).to.match(
        /^TRUSTED_PROXIES: must be set/m,
      );
    });

    it('accepts `none` (no proxies) or addresses, and is not asked for on plaintext loopback or outside production', () => {
      expect(loadConfig({ ...exposed, TRUSTED_PROXIES: 'none' }).TRUSTED_PROXIES).to.equal('');
      expect(loadConfig({ ...exposed, TRUSTED_PROXIES: ' NONE ' }).TRUSTED_PROXIES).to.equal('');
      expect(loadConfig({ ...exposed, TRUSTED_PROXIES: '10.0.0.0/8' }).TRUSTED_PROXIES).to.equal(
        '10.0.0.0/8',
      );
      expect(loadConfig(prod).TRUSTED_PROXIES, 'plaintext on 127.0.0.1').to.equal('');
      expect(loadConfig({ GRPC_HOST: '0.0.0.0' }).TRUSTED_PROXIES, 'development').to.equal('');
      expect(failure({ ...exposed, TRUSTED_PROXIES: 'none,10.0.0.1' })).to.match(/TRUSTED_PROXIES: .*none/);
    });

    it('stops the server at start with exit code 2, naming the knob', async () => {
      const { code, output } = await runUntilExit(exposed);
      expect(code).to.equal(2);
      expect(output).to.match(/TRUSTED_PROXIES: must be set/);
    });
  });

  describe('INTROSPECTION_AUTH=none', () => {
    it('is a production warning naming it; `required`, `auto` or another NODE_ENV are not', () => {
      expect(productionWarnings(loadConfig({ ...prod, INTROSPECTION_AUTH: 'none' }))).to.have.length(1);
      expect(productionWarnings(loadConfig({ ...prod, INTROSPECTION_AUTH: 'none' }))[0]).to.match(
        /^INTROSPECTION_AUTH=none in production/,
      );
      expect(productionWarnings(loadConfig(prod))).to.deep.equal([]);
      expect(productionWarnings(loadConfig({ INTROSPECTION_AUTH: 'none' }))).to.deep.equal([]);
    });

    it('is logged at start by a production server, which still serves', async () => {
      const db = await createTestDatabase();
      const proc = await spawnServer({
        ...prod,
        BCRYPT_ROUNDS: '10',
        DATABASE_URL: db.url,
        INTROSPECTION_AUTH: 'none',
      });
      try {
        const line = proc.output.find((l) => l.includes('INTROSPECTION_AUTH=none')) ?? 'no such line';
        expect(line).to.include('"level":40');
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
        await db.drop();
      }
    });
  });
});
