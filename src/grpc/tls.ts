/**
 * TLS for the gRPC port, with certificates that can be replaced without a restart: the files are
 * read at start and again on `reload()` (SIGHUP, see src/main.ts); new connections get the new
 * certificate, connections already open keep theirs until they close. A reload that finds a bad
 * certificate, key or CA keeps the ones in use and says why.
 *
 * Built on grpc-js's certificate-provider server credentials (`experimental`): one provider here
 * serves both the identity (certificate and key) and, for mutual TLS, the client CA.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import { experimental, type ServerCredentials } from '@grpc/grpc-js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Client certificates signed by this CA are verified (mutual TLS). */
  caFile?: string;
  /** Refuse a connection without a valid client certificate (`require`), or accept it (`optional`). */
  requireClientCertificate: boolean;
}

export class TlsError extends Error {
  override name = 'TlsError';
}

type IdentityListener = (u: { certificate: Buffer; privateKey: Buffer } | null) => void;
type CaListener = (u: { caCertificate: Buffer } | null) => void;

async function read(file: string, variable: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new TlsError(
      `${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/** Reads and checks the files: a certificate chain, its own private key, and a CA certificate. */
async function load(files: TlsFiles) {
  const certificate = await read(files.certFile, 'GRPC_TLS_CERT_FILE');
  const privateKey = await read(files.keyFile, 'GRPC_TLS_KEY_FILE');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certificate);
  } catch {
    throw new TlsError(`GRPC_TLS_CERT_FILE: ${files.certFile} is not a PEM certificate`);
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(privateKey))) {
      throw new TlsError(`GRPC_TLS_KEY_FILE: ${files.keyFile} is not the key of ${files.certFile}`);
    }
  } catch (err) {
    if (err instanceof TlsError) throw err;
    throw new TlsError(`GRPC_TLS_KEY_FILE: ${files.keyFile} is not a PEM private key`);
  }
  let caCertificate: Buffer | undefined;
  if (files.caFile) {
    caCertificate = await read(files.caFile, 'GRPC_TLS_CLIENT_CA_FILE');
    try {
      new X509Certificate(caCertificate);
    } catch {
      throw new TlsError(`GRPC_TLS_CLIENT_CA_FILE: ${files.caFile} is not a PEM certificate`);
    }
  }
  return { certificate, privateKey, caCertificate, notAfter: leaf.validTo };
}

export interface ReloadableTls {
  readonly credentials: ServerCredentials;
  /** Reads the files again; new connections use what it found. Throws TlsError (and keeps the old) when they are bad. */
  reload(): Promise<{ notAfter: string }>;
}

export async function createReloadableTls(files: TlsFiles): Promise<ReloadableTls> {
  let current = await load(files);
  const identityListeners = new Set<IdentityListener>();
  const caListeners = new Set<CaListener>();
  const notify = () => {
    for (const l of identityListeners)
      l({ certificate: current.certificate, privateKey: current.privateKey });
    if (current.caCertificate) for (const l of caListeners) l({ caCertificate: current.caCertificate });
  };
  // grpc-js adds the server's own watcher only after adding these listeners: an update delivered
  // synchronously would reach no one, so the first one is delivered on the next turn.
  const provider = {
    addIdentityCertificateListener(l: IdentityListener) {
      identityListeners.add(l);
      queueMicrotask(() => l({ certificate: current.certificate, privateKey: current.privateKey }));
    },
    removeIdentityCertificateListener: (l: IdentityListener) => identityListeners.delete(l),
    addCaCertificateListener(l: CaListener) {
      caListeners.add(l);
      const ca = current.caCertificate;
      if (ca) queueMicrotask(() => l({ caCertificate: ca }));
    },
    removeCaCertificateListener: (l: CaListener) => caListeners.delete(l),
  };
  // grpc-js 1.14 hands its first argument to the identity and its second to the CA (its .d.ts names
  // them the other way round); one provider serving both makes the order moot.
  const credentials = experimental.createCertificateProviderServerCredentials(
    provider as unknown as Parameters<typeof experimental.createCertificateProviderServerCredentials>[0],
    (files.caFile ? provider : null) as unknown as Parameters<
      typeof experimental.createCertificateProviderServerCredentials
    >[1],
    files.requireClientCertificate && Boolean(files.caFile),
  );
  return {
    credentials,
    async reload() {
      current = await load(files);
      notify();
      return { notAfter: current.notAfter };
    },
  };
}
