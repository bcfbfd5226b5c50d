import { expect } from 'chai';
import {
  createServiceAccountAdmin,
  createServiceTokenIssuer,
} from '../../services/auth/service-accounts.service.js';
import { AppError } from '../../src/errors.js';
import { ORIGIN, useCases } from './harness.js';

const kindOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: unknown) => (e instanceof AppError ? e.kind : `not an AppError: ${String(e)}`),
  );

async function world() {
  const uc = await useCases();
  const admin = createServiceAccountAdmin({
    accounts: uc.stores.serviceAccounts,
    secretOverlapS: 3600,
    transactions: uc.stores.transactions,
    audit: uc.stores.audit,
    operator: 'cli:unit',
  });
  const issuer = createServiceTokenIssuer({
    accounts: uc.stores.serviceAccounts,
    tokens: uc.tokens,
    throttle: uc.stores.throttle,
    limits: { pair: 3, source: 6, account: 10 },
    counters: uc.counters,
    audit: uc.stores.audit,
  });
  return { ...uc, admin, issuer };
}

describe('service accounts (in-memory stores)', () => {
  it('creates an account with a 256-bit secret shown once, and refuses bad names and scopes', async () => {
    const w = await world();
    const made = await w.admin.create({ name: 'billing', scopes: ['users.read', 'users.read'] });
    expect(made.scopes).to.deep.equal(['users.read']);
    expect(Buffer.from(made.client_secret, 'base64url')).to.have.length(32);
    expect((await w.admin.list())[0]).to.not.have.property('secretHash');
    expect(await kindOf(w.admin.create({ name: 'billing', scopes: ['users.read'] }))).to.equal(
      'ALREADY_EXISTS',
    );
    for (const bad of [
      { name: 'Bad Name', scopes: ['users.read'] },
      { name: 'ok-name', scopes: [] },
      { name: 'ok-name', scopes: ['admin'] },
    ]) {
      expect(await kindOf(w.admin.create(bad)), JSON.stringify(bad)).to.equal('INVALID_ARGUMENT');
    }
  });

  it('issues a service token for the right secret only, whose caller carries the scopes', async () => {
    const w = await world();
    const made = await w.admin.create({ name: 'reports', scopes: ['users.read', 'tokens.introspect'] });
    const token = await w.issuer.issueToken(
      { clientId: made.client_id, clientSecret: made.client_secret },
      ORIGIN,
    );
    expect(token).to.deep.include({
      tokenType: 'Bearer',
      expiresIn: 900,
      scopes: ['users.read', 'tokens.introspect'],
    });
    const verified = await w.tokens.verifyAccess(token.accessToken);
    expect(verified?.caller).to.deep.include({ kind: 'service', name: 'reports', via: 'token' });
    expect(
      await kindOf(w.issuer.issueToken({ clientId: made.client_id, clientSecret: 'wrong' }, ORIGIN)),
    ).to.equal('UNAUTHENTICATED');
    expect(
      await kindOf(w.issuer.issueToken({ clientId: 'svc_unknown', clientSecret: 'x' }, ORIGIN)),
    ).to.equal('UNAUTHENTICATED');
    expect(w.counted, 'one token issued, counted once').to.deep.equal(['service-token']);
  });

  it('keeps the previous secret working after a rotation, and throttles wrong ones before comparing', async () => {
    const w = await world();
    const made = await w.admin.create({ name: 'rotating', scopes: ['users.read'] });
    const next = await w.admin.rotate('rotating');
    const issue = (secret: string) =>
      kindOf(w.issuer.issueToken({ clientId: made.client_id, clientSecret: secret }, ORIGIN));
    expect(await issue(made.client_secret), 'the previous one, in the overlap').to.equal('OK');
    expect(await issue(next.client_secret)).to.equal('OK');
    for (let i = 0; i < 3; i++) expect(await issue(`guess ${i}`)).to.equal('UNAUTHENTICATED');
    expect(await issue(next.client_secret), 'the pair is locked').to.equal('RESOURCE_EXHAUSTED');
    expect(await kindOf(w.admin.rotate('nobody'))).to.equal('NOT_FOUND');
  });
});
