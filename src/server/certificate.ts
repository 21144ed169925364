/**
 * TLS material: the configured certificate chain and key, or a self-signed certificate kept in the state dir,
 * and a watcher that reloads the configured files when they change.
 *
 * Self-signed: made for `localhost`, 127.0.0.1 and ::1 with ECDSA P-256, valid one year, stored as
 * `cert.pem` and `key.pem` (mode 0600, each written to a temp file and renamed). It is reused while it
 * loads, matches its key and stays valid for more than `minRemainingDays` (30); otherwise it is remade.
 *
 * Watcher: watches the directories of the two files (a directory watch survives editors and `mv` replacing
 * the file, and Kubernetes-style symlink swaps), debounces, then reads both files; when their content
 * changed it parses them and calls `onChange` with the new material or `onError` (the caller keeps the old
 * one). A slow poll catches filesystems where `fs.watch` reports nothing. The same bytes are reported once.
 */
import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import { createHash, createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';

export interface TlsMaterial {
  /** The PEM chain, leaf first, exactly as read or generated. */
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 of the leaf certificate, colon-separated upper-case hex (as `openssl x509 -fingerprint` shows). */
  readonly fingerprintSha256: string;
  readonly subject: string;
  /** e.g. `DNS:localhost, IP Address:127.0.0.1`; empty when the certificate has none. */
  readonly subjectAltName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly paths: { readonly certificate: string; readonly privateKey: string };
  /** True for the self-signed certificate made in the state dir. */
  readonly generated: boolean;
}

export type CertificateErrorCode =
  | 'CERT_READ_FAILED'
  | 'CERT_INVALID'
  | 'KEY_READ_FAILED'
  | 'KEY_INVALID'
  | 'CERT_KEY_MISMATCH'
  | 'CERT_CONFIG_INCOMPLETE'
  | 'CERT_WRITE_FAILED'
  | 'CERT_GENERATE_FAILED';

export class CertificateError extends Error {
  override readonly name = 'CertificateError';
  constructor(
    readonly code: CertificateErrorCode,
    message: string,
    /** The config key to look at, e.g. `tls.certificate`. */
    readonly configKey: string,
    /** The file concerned, when one is. */
    readonly path: string | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Where configured material lives, and the config keys that name the files (for error messages). */
export interface CertificateFiles {
  readonly certificate: string;
  readonly privateKey: string;
  /** Default `tls.certificate`. */
  readonly certificateKey?: string;
  /** Default `tls.private-key`. */
  readonly privateKeyKey?: string;
}

const DEFAULT_CERT_KEY = 'tls.certificate';
const DEFAULT_PRIVATE_KEY_KEY = 'tls.private-key';
const STATE_DIR_KEY = 'daemon.state-dir';

/** `ENOENT (no such file or directory)` from Node's `ENOENT: no such file or directory, open '/x'`. */
function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (!e.code) return String(e.message ?? err);
  const text = /^[A-Z]+: (.*?), \w+/.exec(e.message)?.[1];
  return text ? `${e.code} (${text})` : e.code;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Parse a PEM chain and key and check that they belong together. No I/O; `paths` and the config keys are
 * only used in the result and in error messages.
 */
export function parseTlsMaterial(certPem: string, keyPem: string, files: CertificateFiles, generated = false): TlsMaterial {
  const certKey = files.certificateKey ?? DEFAULT_CERT_KEY;
  const keyKey = files.privateKeyKey ?? DEFAULT_PRIVATE_KEY_KEY;
  const blocks = certPem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    throw new CertificateError('CERT_INVALID', `${certKey}: ${files.certificate} contains no PEM certificate (-----BEGIN CERTIFICATE-----)`, certKey, files.certificate);
  }
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new CertificateError('CERT_INVALID', `${certKey}: ${files.certificate}: certificate #${i + 1} cannot be parsed: ${(err as Error).message}`, certKey, files.certificate, { cause: err });
    }
  });
  const leaf = chain[0] as X509Certificate;
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE' ? 'the key is encrypted, which is not supported' : `cannot parse the private key: ${(err as Error).message}`;
    throw new CertificateError('KEY_INVALID', `${keyKey}: ${files.privateKey}: ${reason}`, keyKey, files.privateKey, { cause: err });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateError(
      'CERT_KEY_MISMATCH',
      `${keyKey}: ${files.privateKey} is not the key of the certificate in ${files.certificate} (${certKey})`,
      keyKey,
      files.privateKey,
    );
  }
  return {
    certPem,
    keyPem,
    fingerprintSha256: leaf.fingerprint256,
    subject: leaf.subject,
    subjectAltName: leaf.subjectAltName ?? '',
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    paths: { certificate: files.certificate, privateKey: files.privateKey },
    generated,
  };
}

async function readBoth(files: CertificateFiles): Promise<{ certPem: string; keyPem: string }> {
  const certKey = files.certificateKey ?? DEFAULT_CERT_KEY;
  const keyKey = files.privateKeyKey ?? DEFAULT_PRIVATE_KEY_KEY;
  const [cert, key] = await Promise.allSettled([readFile(files.certificate, 'utf8'), readFile(files.privateKey, 'utf8')]);
  if (cert.status === 'rejected') {
    throw new CertificateError('CERT_READ_FAILED', `${certKey}: cannot read ${files.certificate}: ${ioReason(cert.reason)}`, certKey, files.certificate, { cause: cert.reason });
  }
  if (key.status === 'rejected') {
    throw new CertificateError('KEY_READ_FAILED', `${keyKey}: cannot read ${files.privateKey}: ${ioReason(key.reason)}`, keyKey, files.privateKey, { cause: key.reason });
  }
  return { certPem: cert.value, keyPem: key.value };
}

/** Read and check a configured certificate chain and key. */
export async function loadCertificateFiles(files: CertificateFiles): Promise<TlsMaterial> {
  const { certPem, keyPem } = await readBoth(files);
  return parseTlsMaterial(certPem, keyPem, files);
}

export interface SelfSignedOptions {
  /** DNS names and IP addresses for the subjectAltName. Default: localhost, 127.0.0.1, ::1. */
  readonly hosts?: readonly string[];
  /** Subject common name. Default: the first host. */
  readonly commonName?: string;
  /** Default 365. */
  readonly validityDays?: number;
  /** Clock for notBefore/notAfter. */
  readonly now?: Date;
  /** Extended key usage: a server certificate (default) or a client certificate (e.g. for management tests). */
  readonly usage?: 'server' | 'client';
}

export const DEFAULT_SELF_SIGNED_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];
const DAY_MS = 86_400_000;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

function isIpAddress(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}

/** Make a self-signed ECDSA P-256 certificate and its PKCS#8 key, in memory. */
export async function generateSelfSigned(options: SelfSignedOptions = {}): Promise<{ certPem: string; keyPem: string }> {
  const hosts = options.hosts ?? DEFAULT_SELF_SIGNED_HOSTS;
  const now = options.now ?? new Date();
  // @peculiar/x509 is typed against the DOM's WebCrypto; Node's webcrypto implements the same interface.
  type Params = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>;
  const crypto = webcrypto as unknown as Params[1];
  const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as unknown as Params[0]['keys'];
  const usage = options.usage ?? 'server';
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: `01${randomBytes(15).toString('hex')}`, // positive, 16 bytes
      // A unique O: OpenSSL finds a trust anchor by subject, so a client trusting the old and the new
      // self-signed certificate (after a renewal) would otherwise try the wrong one.
      name: [{ CN: [options.commonName ?? hosts[0] ?? 'localhost'] }, { O: [`ntptsd self-signed ${randomBytes(4).toString('hex')}`] }],
      notBefore: new Date(now.getTime() - 3_600_000), // tolerate a client clock a little behind
      notAfter: new Date(now.getTime() + (options.validityDays ?? 365) * DAY_MS),
      keys,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIpAddress(h) ? 'ip' : 'dns', value: h }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: toPem('PRIVATE KEY', pkcs8) };
}

/** Write via a temp file in the same directory and rename, so readers never see half a file. Mode 0600. */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.chmod(0o600); // exactly 0600 whatever the umask
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => {});
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
}

export interface EnsureSelfSignedOptions extends SelfSignedOptions {
  /** Reuse the stored certificate only while it stays valid for longer than this. Default 30. */
  readonly minRemainingDays?: number;
  readonly logger?: Logger;
}

/** The self-signed certificate in `stateDir` (cert.pem, key.pem): reused while good, else made anew. */
export async function ensureSelfSignedCertificate(stateDir: string, options: EnsureSelfSignedOptions = {}): Promise<TlsMaterial> {
  const logger = options.logger ?? silentLogger();
  const now = options.now ?? new Date();
  const files: CertificateFiles = { certificate: join(stateDir, 'cert.pem'), privateKey: join(stateDir, 'key.pem'), certificateKey: STATE_DIR_KEY, privateKeyKey: STATE_DIR_KEY };
  const minRemainingMs = (options.minRemainingDays ?? 30) * DAY_MS;

  try {
    const { certPem, keyPem } = await readBoth(files);
    const existing = parseTlsMaterial(certPem, keyPem, files, true);
    if (existing.notAfter.getTime() - now.getTime() > minRemainingMs && existing.notBefore.getTime() <= now.getTime()) {
      logger.debug({ path: files.certificate, notAfter: existing.notAfter.toISOString() }, 'reusing self-signed certificate');
      return existing;
    }
    logger.info({ path: files.certificate, notAfter: existing.notAfter.toISOString() }, 'self-signed certificate expires soon: making a new one');
  } catch (err) {
    const code = (err as CertificateError).code;
    const missing = (code === 'CERT_READ_FAILED' || code === 'KEY_READ_FAILED') && ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    if (!missing) logger.warn({ err, path: files.certificate }, 'stored self-signed certificate unusable: making a new one');
  }

  let generated: { certPem: string; keyPem: string };
  try {
    generated = await generateSelfSigned(options);
  } catch (err) {
    throw new CertificateError('CERT_GENERATE_FAILED', `cannot generate a self-signed certificate: ${(err as Error).message}`, DEFAULT_CERT_KEY, null, { cause: err });
  }
  let current = '';
  try {
    current = stateDir;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // Key first: a crash in between leaves a mismatched pair, which the next start detects and replaces.
    current = files.privateKey;
    await writeFileAtomic(files.privateKey, generated.keyPem);
    current = files.certificate;
    await writeFileAtomic(files.certificate, generated.certPem);
  } catch (err) {
    throw new CertificateError('CERT_WRITE_FAILED', `${STATE_DIR_KEY}: cannot write ${current}: ${ioReason(err)}`, STATE_DIR_KEY, current, { cause: err });
  }
  const material = parseTlsMaterial(generated.certPem, generated.keyPem, files, true);
  logger.info({ path: files.certificate, fingerprint: material.fingerprintSha256, notAfter: material.notAfter.toISOString() }, 'generated self-signed certificate');
  return material;
}

export interface TlsConfig {
  /** `tls.certificate`; empty: self-signed in the state dir. */
  readonly certificate: string;
  /** `tls.private-key`. */
  readonly privateKey: string;
  /** `daemon.state-dir`. */
  readonly stateDir: string;
}

/** The daemon's entry point: configured files when both are set, the self-signed certificate when neither is. */
export async function loadTlsMaterial(config: TlsConfig, options: EnsureSelfSignedOptions = {}): Promise<TlsMaterial> {
  const hasCert = config.certificate !== '';
  const hasKey = config.privateKey !== '';
  if (hasCert !== hasKey) {
    const [set, missing] = hasCert ? [DEFAULT_CERT_KEY, DEFAULT_PRIVATE_KEY_KEY] : [DEFAULT_PRIVATE_KEY_KEY, DEFAULT_CERT_KEY];
    throw new CertificateError('CERT_CONFIG_INCOMPLETE', `${missing}: must be set when ${set} is set (or leave both empty for a self-signed certificate)`, missing, null);
  }
  if (hasCert) return loadCertificateFiles({ certificate: resolve(config.certificate), privateKey: resolve(config.privateKey) });
  return ensureSelfSignedCertificate(config.stateDir, options);
}

export interface CertificateWatcherOptions {
  readonly files: CertificateFiles;
  /** New, valid material whose content differs from the last seen. */
  readonly onChange: (material: TlsMaterial) => void;
  /** The files changed but cannot be used; keep serving the old material. */
  readonly onError: (error: CertificateError) => void;
  /** The material in use now, so an unchanged file is not reported. */
  readonly current?: TlsMaterial;
  /** Quiet time after the last event before reading. Default 250 ms. */
  readonly debounceMs?: number;
  /** Safety-net poll for filesystems without change events; 0 disables. Default 30 s. */
  readonly pollIntervalMs?: number;
  readonly logger?: Logger;
}

function contentDigest(certPem: string, keyPem: string): string {
  return createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
}

export class CertificateWatcher {
  readonly #options: CertificateWatcherOptions;
  readonly #logger: Logger;
  readonly #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  /** Digest of the content (or read failure) seen last, so the same state is reported once. */
  #lastSeen: string | null;
  /** Digest of the content of the material in use. */
  #inUse: string | null;
  #running: Promise<void> | null = null;
  #again = false;
  #closed = false;

  constructor(options: CertificateWatcherOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger();
    this.#inUse = options.current ? contentDigest(options.current.certPem, options.current.keyPem) : null;
    this.#lastSeen = this.#inUse;
  }

  start(): void {
    const { files } = this.#options;
    for (const dir of new Set([dirname(resolve(files.certificate)), dirname(resolve(files.privateKey))])) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#schedule());
        watcher.on('error', (err) => {
          this.#logger.warn({ err, dir }, 'certificate directory watch failed; relying on polling');
          watcher.close();
        });
        this.#watchers.push(watcher);
      } catch (err) {
        this.#logger.warn({ err, dir }, 'cannot watch certificate directory; relying on polling');
      }
    }
    const pollMs = this.#options.pollIntervalMs ?? 30_000;
    if (pollMs > 0) {
      this.#poll = setInterval(() => void this.check(), pollMs);
      this.#poll.unref();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.check(), this.#options.debounceMs ?? 250);
    this.#debounce.unref();
  }

  /** Read the files now (e.g. on SIGHUP). Checks never overlap; one requested during a check runs after it. */
  check(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#checkOnce();
      } while (this.#again && !this.#closed);
      this.#running = null;
    })();
    return this.#running;
  }

  async #checkOnce(): Promise<void> {
    const { files } = this.#options;
    let content: { certPem: string; keyPem: string };
    try {
      content = await readBoth(files);
    } catch (err) {
      // A file missing for a moment is normal while it is replaced: report it once, keep watching.
      const seen = `read:${(err as CertificateError).message}`;
      if (seen !== this.#lastSeen) {
        this.#lastSeen = seen;
        this.#report(err as CertificateError);
      }
      return;
    }
    const digest = contentDigest(content.certPem, content.keyPem);
    if (digest === this.#lastSeen) return;
    this.#lastSeen = digest;
    if (digest === this.#inUse) return; // back to the content in use
    let material: TlsMaterial;
    try {
      material = parseTlsMaterial(content.certPem, content.keyPem, files);
    } catch (err) {
      // Also normal in between: the certificate is replaced, then the key.
      this.#report(err as CertificateError);
      return;
    }
    if (this.#closed) return;
    this.#inUse = digest;
    this.#logger.info({ fingerprint: material.fingerprintSha256, notAfter: material.notAfter.toISOString() }, 'certificate files changed');
    this.#options.onChange(material);
  }

  #report(error: CertificateError): void {
    if (this.#closed) return;
    this.#logger.warn({ code: error.code, reason: error.message }, 'certificate files changed but cannot be used; keeping the current certificate');
    this.#options.onError(error);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    for (const watcher of this.#watchers.splice(0)) watcher.close();
  }
}
