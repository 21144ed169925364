/**
 * Helpers of the management tests: a line-reading client for the Unix socket and TLS, and a small PKI made with
 * @peculiar/x509 (a client CA, an untrusted CA, client certificates valid or expired).
 */
import net from 'node:net';
import tls from 'node:tls';
import { createHash, webcrypto } from 'node:crypto';

export type Message = Record<string, unknown> & { id?: unknown; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } };

/** A JSON value of a shape the test asserts on. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- results are walked by tests that assert their shape
export type Dyn = any;

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A management connection that collects the server's lines. */
export class MgmtConn {
  readonly messages: Message[] = [];
  #read = 0;
  #buffer = '';
  #waiters: Array<() => void> = [];
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        this.messages.push(JSON.parse(line) as Message);
      }
      this.#wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  static unix(path: string): Promise<MgmtConn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path }, () => resolve(new MgmtConn(socket)));
      socket.once('error', reject);
    });
  }

  static tls(port: number, options: tls.ConnectionOptions & { localAddress?: string } = {}): Promise<MgmtConn> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['ntp-mgmt/1'], minVersion: 'TLSv1.3', ...options }, () =>
        resolve(new MgmtConn(socket)),
      );
      socket.once('error', reject);
    });
  }

  /** The next unread message matching `predicate` (earlier non-matching ones are skipped). */
  async next(predicate: (m: Message) => boolean = () => true, timeoutMs = 10_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#read < this.messages.length) {
        const m = this.messages[this.#read++] as Message;
        if (predicate(m)) return m;
      }
      if (this.closed) throw new Error(`connection closed; messages: ${JSON.stringify(this.messages).slice(0, 2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; messages: ${JSON.stringify(this.messages).slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  hello(): Promise<Message> {
    return this.next((m) => m.method === 'hello');
  }

  /** Sends one line and returns the next response (a message with an `id` member). */
  async send(line: string): Promise<Message> {
    this.socket.write(`${line}\n`);
    return this.next((m) => 'id' in m);
  }

  call(method: string, params?: Record<string, unknown>, id: number | string = 1): Promise<Message> {
    return this.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }));
  }

  /** Resolves when the server has closed the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface Pem {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly caPem: string;
  /** Client certificates: mapped to admin / monitor, unmapped, expired (admin CN), issued by an untrusted CA (admin CN). */
  readonly admin: Pem;
  readonly monitor: Pem;
  readonly unmapped: Pem;
  readonly expired: Pem;
  readonly untrusted: Pem;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

export async function makePki(): Promise<TestPki> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const now = Date.now();
  let serialNo = 1;
  const serial = () => (0x10000 + serialNo++).toString(16);
  const keys = async () => (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const makeCa = async (name: string) => {
    const k = await keys();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${name}`,
      notBefore: new Date(now - 86400_000),
      notAfter: new Date(now + 2 * 86400_000),
      signingAlgorithm: alg,
      keys: k,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    return { cert, keys: k };
  };
  const trusted = await makeCa('mgmt test client CA');
  const other = await makeCa('mgmt test untrusted CA');
  const client = async (cn: string, ca: typeof trusted, notBefore: number, notAfter: number): Promise<Pem> => {
    const k = await keys();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${cn}`,
      issuer: ca.cert.subject,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      signingAlgorithm: alg,
      publicKey: k.publicKey,
      signingKey: ca.keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
    return { cert: cert.toString('pem'), key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', k.privateKey)) };
  };
  const valid = [now - 3600_000, now + 86400_000] as const;
  return {
    caPem: trusted.cert.toString('pem'),
    admin: await client('ops-admin', trusted, ...valid),
    monitor: await client('ops-monitor', trusted, ...valid),
    unmapped: await client('someone-else', trusted, ...valid),
    expired: await client('ops-admin', trusted, now - 3 * 86400_000, now - 86400_000),
    untrusted: await client('ops-admin', other, ...valid),
  };
}
