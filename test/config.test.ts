import fs from 'node:fs';
import { expect } from 'chai';
import { CONFIG_DEFAULTS, CONFIG_KEYS, ConfigError, DEV_SECRET_KEY, loadConfig } from '../src/config.js';
import { runUntilExit } from './helpers/process.js';

const failure = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.env).to.equal('development');
    expect(c.grpc).to.deep.equal({ host: '0.0.0.0', port: 50051, maxReceiveBytes: 65536 });
    expect(c.db.url).to.equal('');
    expect(c.db.dataDir).to.equal('./.data');
    expect(c.db.embeddedPort).to.equal(0);
    expect(c.db.echo).to.equal(false);
    expect(c.db.sync).to.equal(true);
    expect(c.db.pool).to.deep.equal({
      max: 30,
      min: 2,
      acquireMs: 30000,
      idleMs: 10000,
      evictMs: 1000,
      recycleS: 3600,
    });
    expect(c.auth.accessTokenTtlS).to.equal(30 * 60);
    expect(c.auth.refreshTokenTtlS).to.equal(14 * 86400);
    expect(c.auth.bcryptRounds).to.equal(12);
    expect(c.logLevel).to.equal('info');
  });

  it('reads every knob from the environment', () => {
    const c = loadConfig({
      GRPC_PORT: '6000',
      DB_ECHO: 'true',
      DB_SYNC: 'false',
      DB_POOL_MAX: '7',
      DB_POOL_MIN: '1',
      DB_POOL_ACQUIRE_MS: '1234',
      BCRYPT_ROUNDS: '10',
      ACCESS_TOKEN_EXPIRE_MINUTES: '5',
      DATABASE_URL: 'postgresql://u:p@db:5432/app',
    });
    expect(c.grpc.port).to.equal(6000);
    expect(c.db).to.include({ echo: true, sync: false, url: 'postgresql://u:p@db:5432/app' });
    expect(c.db.pool).to.include({ max: 7, min: 1, acquireMs: 1234 });
    expect(c.auth).to.include({ bcryptRounds: 10, accessTokenTtlS: 300 });
  });

  const bad: [Record<string, string>, RegExp][] = [
    [{ GRPC_PORT: 'abc' }, /GRPC_PORT: must be an integer from 0 to 65535/],
    [{ GRPC_PORT: '70000' }, /GRPC_PORT/],
    [{ BCRYPT_ROUNDS: '3' }, /BCRYPT_ROUNDS: must be an integer from 4 to 15/],
    [{ BCRYPT_ROUNDS: '16' }, /BCRYPT_ROUNDS/],
    [{ DB_ECHO: 'yes' }, /DB_ECHO: must be true or false/],
    [{ DB_POOL_MAX: '0' }, /DB_POOL_MAX/],
    [{ DB_POOL_MIN: '40' }, /DB_POOL_MIN: must not exceed DB_POOL_MAX/],
    [{ DATABASE_URL: 'mysql://x@y/z' }, /DATABASE_URL: must be empty .* postgres/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
    [{ ACCESS_TOKEN_EXPIRE_MINUTES: '1.5' }, /ACCESS_TOKEN_EXPIRE_MINUTES/],
  ];
  for (const [env, message] of bad) {
    it(`refuses ${JSON.stringify(env)} naming the variable`, () => {
      expect(failure(env)).to.match(message);
    });
  }

  it('lists every bad variable at once', () => {
    const msg = failure({ GRPC_PORT: 'x', BCRYPT_ROUNDS: 'y', DB_ECHO: 'z' });
    expect(msg)
      .to.match(/GRPC_PORT/)
      .and.match(/BCRYPT_ROUNDS/)
      .and.match(/DB_ECHO/);
  });

  it('never prints a secret value in an error', () => {
    const msg = failure({ DATABASE_URL: 'mysql://user:hunter2@host/db' });
    expect(msg).to.not.include('hunter2');
  });

  it('refuses in production a missing, default or short SECRET_KEY, and accepts a long one', () => {
    expect(failure({ NODE_ENV: 'production' })).to.match(/SECRET_KEY: must be set in production/);
    expect(failure({ NODE_ENV: 'production', SECRET_KEY: DEV_SECRET_KEY })).to.match(/SECRET_KEY/);
    expect(failure({ NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(31) })).to.match(
      /SECRET_KEY: must be at least 32 bytes/,
    );
    expect(loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(32) }).auth.secretKey).to.have.length(
      32,
    );
  });

  it('documents every variable with its default in .env.example', () => {
    const example = fs.readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    for (const key of CONFIG_KEYS) {
      const value = CONFIG_DEFAULTS[key] === DEV_SECRET_KEY ? '' : CONFIG_DEFAULTS[key];
      expect(example, key).to.include(`\n# ${key}=${value}\n`);
    }
  });

  it('stops the server at start with exit code 2 and a message naming the variable', async () => {
    const { code, output } = await runUntilExit({ BCRYPT_ROUNDS: '99', DB_POOL_MAX: 'many' });
    expect(code).to.equal(2);
    expect(output)
      .to.match(/BCRYPT_ROUNDS: must be an integer from 4 to 15/)
      .and.match(/DB_POOL_MAX/);
    const prod = await runUntilExit({ NODE_ENV: 'production' });
    expect(prod.code).to.equal(2);
    expect(prod.output).to.match(/SECRET_KEY/);
  });
});
