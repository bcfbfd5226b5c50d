/** A verified peer certificate → the names and purpose the authenticator matches (src/security/authenticator.ts). */
import { expect } from 'chai';
import { clientCertificateOf } from '../../src/security/authenticator.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

describe('client certificate identity', () => {
  it('takes the subject CN(s) and the DNS SANs whole, never addresses, emails or URIs', () => {
    expect(
      clientCertificateOf({
        subject: { CN: 'billing.service' },
        subjectaltname:
          'DNS:billing.service, DNS:crm.internal.example, IP Address:127.0.0.1, email:a@example.com, URI:spiffe://x/billing.service',
        ext_key_usage: [CLIENT_AUTH],
      }),
    ).to.deep.equal({ names: ['billing.service', 'crm.internal.example'], clientAuth: true });
    expect(clientCertificateOf({ subject: { CN: ['a.service', 'b.service'] } }).names).to.deep.equal([
      'a.service',
      'b.service',
    ]);
  });

  it('drops a quoted DNS name (one with a comma) whole instead of splitting it into account names', () => {
    expect(
      clientCertificateOf({ subjectaltname: 'DNS:"x, DNS:billing.service", DNS:ok.service' }).names,
    ).to.deep.equal(['ok.service']);
    expect(
      clientCertificateOf({
        subjectaltname: 'DNS:"x, DNS:billing.service, y\\"z", DNS:ok.service, DNS:"w"',
      }).names,
    ).to.deep.equal(['ok.service']);
  });

  it('is for client authentication only with the clientAuth extended key usage', () => {
    expect(clientCertificateOf({ ext_key_usage: [SERVER_AUTH, CLIENT_AUTH] }).clientAuth).to.equal(true);
    expect(clientCertificateOf({ ext_key_usage: [SERVER_AUTH] }).clientAuth).to.equal(false);
    expect(clientCertificateOf({}).clientAuth, 'no extension at all').to.equal(false);
  });
});
