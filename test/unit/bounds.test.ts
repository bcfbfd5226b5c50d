/** The bounds of answers and log lines, and what a database failure may tell the logs (issue 16). */
import { status as Code } from '@grpc/grpc-js';
import { expect } from 'chai';
import { DatabaseError, UniqueConstraintError } from 'sequelize';
import { DatabaseFailure, sanitizeDbError, withoutValues } from '../../src/db/database.js';
import { QUERY_ERROR_LINE } from '../../src/db/embedded.js';
import { AppError, echo, InvalidArgumentError, quote, unavailable } from '../../src/errors.js';
import { BadRequest } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { badRequestDetails, boundMessage, STATUS_DETAILS_KEY, toStatus } from '../../src/grpc/status.js';
import { createLogger, finishLine } from '../../src/logger.js';

const HASH = '$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234';
const silent = createLogger('silent');
/** Bytes of a message in `grpc-message` (percent-encoded as grpc-js does). */
const wireLength = (m: string) =>
  [...m].reduce((n, ch) => {
    const c = ch.codePointAt(0) ?? 0;
    return n + (c >= 0x20 && c <= 0x7e && c !== 0x25 ? 1 : 3 * Buffer.byteLength(ch));
  }, 0);

describe('echoing caller values', () => {
  it('keeps at most 64 characters (code points) and marks the cut', () => {
    expect(echo('a'.repeat(64))).to.equal('a'.repeat(64));
    expect(echo('a'.repeat(65))).to.equal(`${'a'.repeat(64)}…`);
    expect(echo('😀'.repeat(100))).to.equal(`${'😀'.repeat(64)}…`);
    expect(quote('b'.repeat(1000))).to.equal(`"${'b'.repeat(64)}…"`);
  });
});

describe('field violations', () => {
  it('reports at most 10, the last one counting the rest', () => {
    const many = Array.from({ length: 300 }, (_, i) => ({ field: `f${i}`, description: 'bad' }));
    const err = new InvalidArgumentError(many);
    expect(err.violations).to.have.length(10);
    expect(err.violations[9]).to.deep.equal({
      field: 'f9',
      description: '… and 291 more violation(s) not shown',
    });
    expect(new InvalidArgumentError(many.slice(0, 10)).violations).to.have.length(10);
  });
});

describe('status bounds', () => {
  it('cuts a message to 1 KB as sent in grpc-message (percent-encoded)', () => {
    expect(boundMessage('short')).to.equal('short');
    for (const text of ['x'.repeat(5000), 'é'.repeat(5000), '%'.repeat(5000), '😀'.repeat(5000)]) {
      const cut = boundMessage(text);
      expect(wireLength(cut), text.slice(0, 3)).to.be.at.most(1024).and.above(1000);
      expect(cut.endsWith('…')).to.equal(true);
    }
    const status = toStatus(new AppError('NOT_FOUND', 'n'.repeat(10_000)), silent);
    expect(wireLength(status.details)).to.be.at.most(1024);
  });
  it('keeps the details trailer within 4 KB by dropping violations, saying how many', () => {
    const violations = Array.from({ length: 10 }, (_, i) => ({
      field: `f${i}`,
      description: 'd'.repeat(900),
    }));
    const raw = badRequestDetails('m', violations);
    expect(raw.length).to.be.at.most(4096);
    const bad = BadRequest.decode(Status.decode(raw).details[0]?.value as Uint8Array).fieldViolations;
    expect(bad.length).to.be.below(10);
    expect(bad.at(-1)?.description).to.equal(`… and ${10 - bad.length + 1} more violation(s) not shown`);
    // one violation too long on its own is cut too
    expect(badRequestDetails('m', [{ field: 'f', description: 'x'.repeat(20_000) }]).length).to.be.at.most(
      4096,
    );
  });
  it('bounds what toStatus sends for INVALID_ARGUMENT', () => {
    const err = new InvalidArgumentError(
      Array.from({ length: 50 }, (_, i) => ({ field: `f${i}`.repeat(100), description: 'é'.repeat(2000) })),
    );
    const status = toStatus(err, silent);
    expect(status.code).to.equal(Code.INVALID_ARGUMENT);
    expect(wireLength(status.details)).to.be.at.most(1024);
    expect((status.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer).length).to.be.at.most(4096);
  });
});

describe('log lines', () => {
  const capture = () => {
    const lines: string[] = [];
    return { lines, logger: createLogger('trace', { write: (l: string) => void lines.push(l) }) };
  };
  it('are at most 8 KB: long values are cut and the line says so', () => {
    const { lines, logger } = capture();
    logger.info(
      { big: 'z'.repeat(900_000), list: Array.from({ length: 5000 }, (_, i) => `item${i}`) },
      'huge',
    );
    const [line] = lines;
    expect(Buffer.byteLength(line as string)).to.be.at.most(8192);
    const parsed = JSON.parse(line as string);
    expect(parsed).to.include({ msg: 'huge', truncated: true });
    expect(parsed.big).to.match(/^z+…\[truncated\] \(900000 chars\)$/);
  });
  it('leave a line within the limit as it is', () => {
    const line = `${JSON.stringify({ level: 30, msg: 'ok', v: 'a'.repeat(100) })}\n`;
    expect(finishLine(line)).to.equal(line);
  });
  it('never carry a bcrypt hash, at any level', () => {
    const { lines, logger } = capture();
    logger.trace({ row: { hash: HASH } }, `hash ${HASH.replace('$2b$', '$2y$')} in the message`);
    logger.error({ err: new Error(`failed with ${HASH.replace('$2b$', '$2a$')}`) }, 'oops');
    const out = lines.join('');
    expect(out).to.not.match(/\$2[aby]\$/);
    expect(out).to.include('[bcrypt hash]');
  });
});

describe('database failures in the logs', () => {
  const bind = ['someone@example.com', HASH, 'Some Display Name'];
  const sql = 'INSERT INTO users (email, password_hash, display_name) VALUES ($1, $2, $3)';
  const pgError = () =>
    Object.assign(new Error(`value "${bind[2]}" is bad for someone@example.com`), {
      code: '23502',
      severity: 'ERROR',
      table: 'users',
      column: 'display_name',
      detail: `Failing row contains (someone@example.com, ${HASH}, Some Display Name).`,
      sql,
      parameters: bind,
    });
  const sequelizeError = () =>
    Object.assign(new DatabaseError(pgError() as never), { sql, parameters: bind });

  it('keep the SQLSTATE and names, never a parameter, the detail or (without DB_ECHO) the SQL', () => {
    const out = sanitizeDbError(sequelizeError(), { sql, bind }, false);
    expect(out).to.be.instanceOf(DatabaseFailure);
    const logged = JSON.stringify({
      ...(out as object),
      message: (out as Error).message,
      stack: (out as Error).stack,
    });
    expect(out).to.include({ code: '23502', table: 'users', column: 'display_name' });
    for (const secret of [...bind, 'INSERT INTO', 'Failing row'])
      expect(logged, secret).to.not.include(secret);
  });
  it('keep the SQL with DB_ECHO, still without parameters', () => {
    const out = sanitizeDbError(sequelizeError(), { sql, bind }, true) as DatabaseFailure;
    expect(out.sql).to.equal(sql);
    expect(JSON.stringify({ ...out, message: out.message }))
      .to.not.include(HASH)
      .and.not.include(bind[0]);
  });
  it('keep a unique violation a UniqueConstraintError (the stores answer ALREADY_EXISTS), without its values', () => {
    const original = new UniqueConstraintError({
      parent: Object.assign(pgError(), { code: '23505', constraint: 'users_email_key' }) as never,
      fields: { email: bind[0] },
    });
    const out = sanitizeDbError(original, { sql, bind }, false);
    expect(out).to.be.instanceOf(UniqueConstraintError);
    expect(JSON.stringify(out)).to.not.include(bind[0]).and.not.include(HASH);
  });
  it('replace the driver cause of a domain error', () => {
    const out = sanitizeDbError(
      unavailable('the database is unavailable', sequelizeError()),
      { sql, bind },
      false,
    );
    expect(out).to.be.instanceOf(AppError);
    expect((out as AppError).cause).to.be.instanceOf(DatabaseFailure);
  });
  it('take parameters, emails and bcrypt hashes out of a message', () => {
    expect(withoutValues(`x ${HASH} y a@b.io z secretvalue`, ['secretvalue'])).to.equal(
      'x [bcrypt hash] y [email] z [parameter]',
    );
  });
  it('pass our own errors through unchanged', () => {
    const mine = new Error('a bug');
    expect(sanitizeDbError(mine, { sql, bind }, false)).to.equal(mine);
  });
});

describe("embedded PostgreSQL's own log lines (without DB_ECHO)", () => {
  it('drop the lines of a failed statement, keep the rest', () => {
    const failed = [
      '2026-12-08 00:45:00.428 UTC [123] ERROR:  refused row (a@b.io)',
      '2026-12-08 00:45:00.428 UTC [123] DETAIL:  Failing row contains (a@b.io, $2b$...).',
      '2026-12-08 00:45:00.428 UTC [123] STATEMENT:  INSERT INTO users',
      '\tVALUES ($1, $2)',
    ];
    for (const line of failed) expect(QUERY_ERROR_LINE.test(line), line).to.equal(true);
    expect(QUERY_ERROR_LINE.test('2026-12-08 00:45:00.428 UTC [1] LOG:  database system is ready')).to.equal(
      false,
    );
  });
});
