/** The migration list: every file of src/db/migrations/ is registered once, in order, under its own name. */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { MIGRATIONS } from '../../src/db/migrations/index.js';

const FOLDER = path.join(import.meta.dirname, '../../src/db/migrations');

describe('the migration list (src/db/migrations/index.ts)', () => {
  it('names every NNNN-*.ts file of the folder, in file order, and nothing else', () => {
    const files = fs
      .readdirSync(FOLDER)
      .filter((f) => /^\d{4}-.+\.ts$/.test(f))
      .sort()
      .map((f) => f.replace(/\.ts$/, ''));
    expect(MIGRATIONS.map((m) => m.name)).to.deep.equal(files);
  });

  it('has names of the form NNNN-lower-case-words, numbered 0001, 0002, ... without gaps', () => {
    MIGRATIONS.forEach((m, i) => {
      expect(m.name).to.match(/^\d{4}-[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(m.name.slice(0, 4)).to.equal(String(i + 1).padStart(4, '0'));
      expect(m.up, `${m.name} exports up`).to.be.a('function');
    });
  });
});
