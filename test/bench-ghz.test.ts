/** The ghz configs of bench/ghz/ use only ghz's documented options and our known placeholders. */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { fillConfig, listConfigs, placeholdersOf, validateConfig } from '../bench/ghz-config.js';

describe('bench/ghz configs', () => {
  const files = listConfigs();

  it('has one config per scenario ghz can drive', () => {
    expect(files.map((f) => path.basename(f, '.json'))).to.have.members([
      'batch-get-users',
      'get-user-by-email',
      'get-user-by-id',
      'list-users',
      'login',
      'refresh-token',
      'register',
      'validate-token',
    ]);
  });

  for (const file of files) {
    it(`${path.basename(file)} is a valid ghz config`, () => {
      const config = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      expect(validateConfig(config)).to.deep.equal([]);
    });
  }

  it('catches option names ghz does not know and bad values', () => {
    expect(
      validateConfig({ call: 'a.B/C', host: 'localhost:1', insecure: true, n: 10, data: {} }),
    ).to.include('"n" is not a ghz config option');
    expect(
      validateConfig({
        call: 'a.B/C',
        host: 'localhost:1',
        insecure: true,
        duration: '30',
        data: { x: '{{.token}}' },
      }),
    ).to.include.members([
      '"duration" must be a Go duration such as "30s"',
      "{{.token}} is not one of ghz's documented template actions",
    ]);
  });

  it('fills whole-value placeholders with any JSON value and embedded ones as text', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ghz config placeholders, not JavaScript templates
    const config = { data: '${REFRESH_TOKENS}', metadata: { authorization: 'Bearer ${TOKEN}' } };
    expect(placeholdersOf(config)).to.have.members(['REFRESH_TOKENS', 'TOKEN']);
    expect(fillConfig(config, { REFRESH_TOKENS: [{ refresh_token: 'r' }], TOKEN: 't' })).to.deep.equal({
      data: [{ refresh_token: 'r' }],
      metadata: { authorization: 'Bearer t' },
    });
  });
});
