import { expect } from 'chai';
import { KeyError, parsePreviousKey } from '../../src/security/keys.js';

describe('JWT_PREVIOUS_PUBLIC_KEY_FILES entries: <file>@<retirement time>', () => {
  it('reads the file and the retirement time (ISO 8601 with a zone), in seconds', () => {
    expect(parsePreviousKey('keys/old.pub@2026-12-07T10:00:00Z')).to.deep.equal({
      file: 'keys/old.pub',
      retiredAt: Date.UTC(2026, 11, 7, 10) / 1000,
    });
    expect(parsePreviousKey('/a@b/old.pub@2026-12-07T11:00:00.500+01:00').file).to.equal('/a@b/old.pub');
  });

  it('refuses an entry without a time, or with one without a zone or unparseable, naming the knob', () => {
    for (const entry of [
      'old.pub',
      'old.pub@',
      'old.pub@2026-12-07',
      'old.pub@2026-12-07T10:00:00',
      'old.pub@yesterday',
      '@2026-12-07T10:00:00Z',
      'old.pub@2026-13-07T10:00:00Z',
    ]) {
      expect(() => parsePreviousKey(entry), entry)
        .to.throw(KeyError)
        .with.property('message')
        .that.match(/^JWT_PREVIOUS_PUBLIC_KEY_FILES: .*needs the key's retirement time/);
    }
  });
});
