/**
 * Answers and log lines a caller cannot blow up (issue 16): at most 10 field violations, 64
 * characters of any caller value, a status message of at most 1 KB and details of at most 4 KB,
 * log lines of at most 8 KB; permission is decided before the update mask is looked at.
 */
import { expect } from 'chai';
import { Code, fieldViolations } from '../src/client.js';
import type { User } from '../src/gen/connectsphere/user/v1/user.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

describe('bounded answers and log lines', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s?.stop();
  });

  const signUp = async () => {
    const acct = newAccount('bounds');
    const reg = await s.client.auth.register(acct);
    return { acct, user: reg.user as User, client: s.client.withToken(reg.tokens?.accessToken ?? '') };
  };
  /** `n` distinct unknown update_mask paths of `length` characters each. */
  const unknownPaths = (n: number, length = 20) =>
    Array.from({ length: n }, (_, i) => `no_such_field_${i}_`.padEnd(length, 'x'));
  const detailsOf = (err: { metadata: { get(key: string): unknown[] } }) =>
    err.metadata.get('grpc-status-details-bin')[0] as Buffer;

  it('decides permission before the mask: a stranger with 500 unknown paths gets PERMISSION_DENIED', async () => {
    const me = await signUp();
    const other = await signUp();
    await expectCode(
      me.client.users.updateUser({ user: other.user, currentPassword: '', updateMask: unknownPaths(500) }),
      Code.PERMISSION_DENIED,
      /only change your own account/,
    );
  });

  it('answers 500 unknown paths with at most 10 violations, a 1 KB message and 4 KB of details; the connection keeps working', async () => {
    const me = await signUp();
    const err = await expectCode(
      me.client.users.updateUser({ user: me.user, currentPassword: '', updateMask: unknownPaths(500, 100) }),
      Code.INVALID_ARGUMENT,
    );
    const violations = fieldViolations(err);
    expect(violations).to.have.length.of.at.most(10).and.length.of.at.least(2);
    expect(violations.at(-1)?.description).to.match(/and \d+ more violation/);
    const shown = violations.length - 1;
    expect(violations.at(-1)?.description).to.include(`and ${500 - shown} more`);
    expect(Buffer.byteLength(err.details)).to.be.at.most(1024);
    expect(detailsOf(err).length).to.be.at.most(4096);
    // the same channel (one connection) answers the next call
    const again = await me.client.users.getUser({ lookup: { $case: 'id', value: me.user.id } });
    expect(again.id).to.equal(me.user.id);
  });

  it('echoes at most 64 characters of a caller value', async () => {
    const me = await signUp();
    const long = `unknown_${'y'.repeat(300)}`;
    const err = await expectCode(
      me.client.users.updateUser({ user: me.user, currentPassword: '', updateMask: [long] }),
      Code.INVALID_ARGUMENT,
    );
    const [v] = fieldViolations(err);
    expect(v?.description).to.include(`"${long.slice(0, 64)}…"`);
    expect(v?.description).to.not.include(long.slice(0, 65));
    expect(err.details).to.not.include(long.slice(0, 65));
  });

  it('writes at most 8 KB per log line for a 58 KB request', async () => {
    const me = await signUp();
    const paths = unknownPaths(500, 116); // ~58 KB of mask
    const before = s.logs.length;
    await expectCode(
      me.client.users.updateUser({ user: me.user, currentPassword: '', updateMask: paths }),
      Code.INVALID_ARGUMENT,
    );
    const lines = s.logs.slice(before);
    const rpc = lines.find((l) => l.includes('"method":"/connectsphere.user.v1.UserService/UpdateUser"'));
    expect(rpc, 'the call is logged').to.not.equal(undefined);
    for (const line of lines) expect(Buffer.byteLength(line)).to.be.at.most(8192);
  });
});
