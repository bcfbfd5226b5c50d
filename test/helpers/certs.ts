/**
 * Certificates a test makes for itself with openssl, in a temporary directory of its own: a CA,
 * and server or client certificates it signs. Nothing here is committed; each test run makes new ones.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestCa extends CertFiles {
  dir: string;
  /**
   * A certificate signed by this CA. `names` become the subject alternative names (`DNS:` for names,
   * `IP:` for addresses); the first is also the subject CN unless `cn` is given.
   */
  issue(
    name: string,
    options: {
      names?: string[];
      cn?: string;
      client?: boolean;
      days?: number;
      /** The extended key usage instead of `client`'s; null: no such extension at all. */
      extendedKeyUsage?: string | null;
    },
  ): Promise<CertFiles>;
  remove(): void;
}

const san = (names: string[]) => names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');

/** A new CA (EC P-256) in its own temporary directory. */
export async function createTestCa(label = 'ConnectSphere Test CA'): Promise<TestCa> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-certs-'));
  fs.chmodSync(dir, 0o711);
  const ca = { cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca.key') };
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    '2',
    '-subj',
    `/CN=${label}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return {
    ...ca,
    dir,
    async issue(name, { names = [], cn, client = false, days = 2, extendedKeyUsage }) {
      const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
      const csr = path.join(dir, `${name}.csr`);
      const ext = path.join(dir, `${name}.ext`);
      await run('openssl', [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        files.key,
        '-out',
        csr,
        '-subj',
        `/CN=${cn ?? names[0] ?? name}`,
      ]);
      const lines = [
        'basicConstraints=critical,CA:FALSE',
        ...(extendedKeyUsage === null
          ? []
          : [`extendedKeyUsage=${extendedKeyUsage ?? (client ? 'clientAuth' : 'serverAuth')}`]),
        ...(names.length ? [`subjectAltName=${san(names)}`] : []),
      ];
      fs.writeFileSync(ext, `${lines.join('\n')}\n`);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
        '-CAcreateserial',
        '-out',
        files.cert,
        '-days',
        String(days),
        '-extfile',
        ext,
      ]);
      return files;
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
