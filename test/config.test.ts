import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { expect } from 'chai';
import { ENV_EXAMPLE, README, renderEnvExample, withConfigTable } from '../scripts/config-docs.js';
import {
  CONFIG_SCHEMA,
  ConfigError,
  type ConfigKey,
  DEV_SECRET_KEY,
  type Knob,
  loadConfig,
} from '../src/config.js';
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

const knobs = Object.entries(CONFIG_SCHEMA) as [ConfigKey, Knob<unknown>][];

/** A valid value other than the default, derived from the knob's declared type, as env text. */
function another(key: ConfigKey, k: Knob<unknown>): { env: string; value: unknown } {
  const t = k.type;
  switch (t.kind) {
    case 'int': {
      const v = (k.default as number) < t.max ? (k.default as number) + 1 : (k.default as number) - 1;
      return { env: ` ${v} `, value: v };
    }
    case 'bool':
      return { env: k.default ? 'false' : 'TRUE', value: !k.default };
    case 'enum': {
      // NODE_ENV=production adds rules of its own (tested below); any other value shows the knob is read
      const v = t.values.find((x) => x !== k.default && x !== 'production') as string;
      return { env: v, value: v };
    }
    case 'string':
      return {
        env: `custom-${key.toLowerCase()}-${'x'.repeat(32)}`,
        value: `custom-${key.toLowerCase()}-${'x'.repeat(32)}`,
      };
    case 'postgres-url':
      return { env: 'postgresql://u:p@db.internal:6543/app', value: 'postgresql://u:p@db.internal:6543/app' };
    case 'cidrs':
      return { env: '10.0.0.0/8, 2001:db8::/32', value: '10.0.0.0/8, 2001:db8::/32' };
  }
}

describe('configuration', () => {
  it('has the declared defaults', () => {
    const c = loadConfig({});
    for (const [key, k] of knobs) expect(c[key], key).to.deep.equal(k.default);
    // a few that matter, spelled out
    expect(c.GRPC_PORT).to.equal(50051);
    expect(c.DB_ECHO).to.equal(false);
    expect(c.BCRYPT_ROUNDS).to.equal(12);
    expect(c.DATABASE_URL).to.equal('');
  });

  it(`reads every one of the ${knobs.length} knobs from the environment`, () => {
    const env: Record<string, string> = {};
    const expected: Record<string, unknown> = {};
    for (const [key, k] of knobs) {
      const { env: text, value } = another(key, k);
      env[key] = text;
      expected[key] = value;
    }
    const c = loadConfig(env);
    for (const [key, k] of knobs) {
      expect(c[key], key).to.deep.equal(expected[key]);
      expect(c[key], `${key} differs from its default`).to.not.deep.equal(k.default);
    }
  });

  it('declares every knob with a doc and a default its own type accepts', () => {
    for (const [key, k] of knobs) {
      expect(k.doc.length, key).to.be.greaterThan(10);
      expect(() => loadConfig({ [key]: String(k.default) }), key).to.not.throw();
    }
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
    [{ DATABASE_URL: 'postgres://x@y/z?sslmode=verify' }, /DATABASE_URL: sslmode "verify" is not one of/],
    [
      { DATABASE_URL: 'postgres://x@y/z?sslmode=verify-full' },
      /DATABASE_URL: sslmode "verify-full" needs sslrootcert/,
    ],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
    [{ ACCESS_TOKEN_EXPIRE_MINUTES: '1.5' }, /ACCESS_TOKEN_EXPIRE_MINUTES/],
    [{ GRPC_HOST: '  ' }, /GRPC_HOST: must be a non-empty string/],
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
    expect(failure({ DATABASE_URL: 'mysql://user:hunter2@host/db' })).to.not.include('hunter2');
    expect(failure({ DATABASE_URL: 'postgres://user:hunter2@host/db?sslmode=nope' })).to.not.include(
      'hunter2',
    );
    expect(failure({ NODE_ENV: 'production', SECRET_KEY: 'hunter2' })).to.not.include('hunter2');
  });

  describe('in production', () => {
    const good = randomBytes(48).toString('base64');
    const prod = (env: Record<string, string>) =>
      failure({ NODE_ENV: 'production', SECRET_KEY: good, ...env });
    it('refuses a missing or development SECRET_KEY, or one containing it', () => {
      expect(failure({ NODE_ENV: 'production' })).to.match(/SECRET_KEY: must be set in production/);
      expect(prod({ SECRET_KEY: DEV_SECRET_KEY })).to.match(/^SECRET_KEY: must be set/m);
      expect(prod({ SECRET_KEY: `${DEV_SECRET_KEY}-but-longer-and-mine` })).to.match(
        /^SECRET_KEY: must be set/m,
      );
    });
    it('refuses a SECRET_KEY of fewer than 32 bytes or 16 distinct characters', () => {
      expect(prod({ SECRET_KEY: good.slice(0, 31) })).to.match(/SECRET_KEY: must be at least 32 bytes/);
      expect(prod({ SECRET_KEY: 'abcdefgh'.repeat(8) })).to.match(
        /SECRET_KEY: must have at least 16 distinct characters/,
      );
    });
    it('refuses BCRYPT_ROUNDS below 10 and DB_ECHO=true, naming each', () => {
      expect(prod({ BCRYPT_ROUNDS: '9' })).to.match(/BCRYPT_ROUNDS: must be at least 10 in production/);
      expect(prod({ DB_ECHO: 'true' })).to.match(/DB_ECHO: must be false in production/);
      expect(prod({ BCRYPT_ROUNDS: '9', DB_ECHO: 'true' }))
        .to.match(/BCRYPT_ROUNDS/)
        .and.match(/DB_ECHO/);
    });
    it('accepts a random key with the defaults', () => {
      expect(loadConfig({ NODE_ENV: 'production', SECRET_KEY: good }).SECRET_KEY).to.equal(good);
      expect(
        loadConfig({ NODE_ENV: 'development', BCRYPT_ROUNDS: '4', DB_ECHO: 'true' }).BCRYPT_ROUNDS,
        'only production',
      ).to.equal(4);
    });
  });

  it('refuses a TRUSTED_PROXIES entry that is not an address or CIDR, naming it', () => {
    expect(failure({ TRUSTED_PROXIES: '10.0.0.0/8, lb.internal' })).to.match(
      /TRUSTED_PROXIES: .*lb\.internal/,
    );
  });

  it('bounds SESSION_MAX_LIFETIME_S between 10 s and 365 days', () => {
    expect(failure({ SESSION_MAX_LIFETIME_S: '9' })).to.match(/SESSION_MAX_LIFETIME_S/);
    expect(failure({ SESSION_MAX_LIFETIME_S: String(366 * 86_400) })).to.match(/SESSION_MAX_LIFETIME_S/);
  });

  it('has .env.example and the README configuration table generated from the declarations (npm run gen:config)', () => {
    expect(fs.readFileSync(ENV_EXAMPLE, 'utf8'), '.env.example is stale: npm run gen:config').to.equal(
      renderEnvExample(),
    );
    const readme = fs.readFileSync(README, 'utf8');
    expect(readme, 'README.md configuration table is stale: npm run gen:config').to.equal(
      withConfigTable(readme),
    );
    for (const [key] of knobs) expect(readme, key).to.include(`| ${key} `);
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
