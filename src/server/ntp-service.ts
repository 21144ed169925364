/**
 * The NTP time service over UDP: one socket per `ntp.listen` address, every datagram handed to the pure
 * `NtpResponder`. This shell only takes timestamps, applies the allow/deny lists, sends and counts.
 *
 * Sockets are batched (recvmmsg/sendmmsg through the native module, src/server/udp-batch.ts) when
 * `ntp.batch-io` is on and the module is there; otherwise, and on systems without it, Node's dgram.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { BlockList, isIPv6 } from 'node:net';
import { randomFillSync } from 'node:crypto';
import type { Clock } from '../clock/clock.js';
import type { KeyRing } from '../crypto/keyring.js';
import { ClientTable } from '../proto/ntp/client-table.js';
import type { MacKeyResolution, MacKeyResolver } from '../proto/ntp/mac-keys.js';
import { NtpResponder, type TimeQuality } from '../proto/ntp/server.js';
import type { Cidr, HostPort, NtpConfig } from '../config/index.js';
import { type Counter, Counters } from './counters.js';
import type { Logger } from './log.js';
import { nativeUdpBatch, type NativeUdpModule, type UdpBatch, UdpBatchSocket } from './udp-batch.js';

export class NtpServiceError extends Error {
  override readonly name = 'NtpServiceError';
  constructor(
    readonly code: 'NTP_ADDRESS_IN_USE' | 'NTP_PERMISSION_DENIED' | 'NTP_ADDRESS_NOT_AVAILABLE' | 'NTP_BIND_FAILED',
    message: string,
  ) {
    super(message);
  }
}

export type NtpCounterName = 'received' | 'responses' | 'kod' | 'drops' | 'denied' | 'send_errors' | 'mac';

export interface NtpServiceOptions {
  readonly config: NtpConfig;
  readonly clock: Clock;
  readonly keyRing: () => KeyRing;
  readonly quality: (nowMicros: number) => TimeQuality;
  readonly logger: Logger;
  /** Called for each request refused by rate limiting (RATE kiss or silent drop); keep it cheap. */
  readonly onRateLimited?: (address: string) => void;
  /**
   * The keys request MACs are verified under (docs/eks.md §7), asked per MAC request so that a reload can
   * swap them (return a new resolver); undefined, or a getter returning undefined, answers every MAC with a
   * crypto-NAK (`unknown_key`).
   */
  readonly macKeys?: () => MacKeyResolver | undefined;
}

const NO_MAC_KEYS: MacKeyResolution = Object.freeze({ kind: 'refused', reason: 'unknown_key' });

/**
 * Random bytes for nonces and cookies, drawn from a pool refilled in one call: cheaper than randomBytes per
 * nonce. The pool is a plain Uint8Array, not a Buffer: Buffer's subarray() builds a FastBuffer per call.
 */
function pooledRandom(poolSize = 64 * 1024): (n: number) => Uint8Array {
  const pool = new Uint8Array(poolSize);
  let used = poolSize;
  return (n: number) => {
    if (n > poolSize) return randomFillSync(new Uint8Array(n));
    if (used + n > poolSize) {
      randomFillSync(pool);
      used = 0;
    }
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = pool[used + i]!;
      pool[used + i] = 0; // never hand out the same bytes twice
    }
    used += n;
    return out;
  };
}

/**
 * dgram's `lookup` option: what `socket.send(bytes, port, address)` calls to resolve `address` before every
 * send. The default (dns.lookup) answers an IP literal without DNS, but only after validating its arguments,
 * and then calls back on a later tick: per datagram. We only ever send to the source address of a received
 * datagram, which the kernel gave us as a numeric address, so it is handed back as it is, synchronously; a
 * host name (never passed today) still goes through dns.lookup.
 */
function numericLookup(family: 4 | 6): (address: string, options: unknown, callback: (err: Error | null, address: string, family: number) => void) => void {
  return (address, options, callback) => {
    const c = address.charCodeAt(0);
    if (address.includes(':') || (family === 4 && c >= 48 && c <= 57)) callback(null, address, family);
    else dns.lookup(address, family, callback);
  };
}

function blockListOf(list: readonly Cidr[]): BlockList {
  const blocks = new BlockList();
  for (const cidr of list) blocks.addSubnet(cidr.address, cidr.prefixLength, cidr.family);
  return blocks;
}

/** Whether `listen` binds an IPv6 socket (names resolve to IPv4, as dgram's udp4 does), and how errors name it. */
function bindTarget(listen: HostPort): { v6: boolean; where: string } {
  const v6 = listen.family === 'ipv6' || isIPv6(listen.host);
  return { v6, where: v6 ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}` };
}

/** A bound socket of either kind, as stop() needs it. */
interface BoundSocket {
  close(): Promise<void>;
}

/** The longest datagram a batched socket takes whole: far above any NTP request (an MTU is 1500 bytes). */
const BATCH_SLOT_SIZE = 4096;

export class NtpService {
  readonly counters = new Counters<NtpCounterName>();
  readonly clients: ClientTable;
  /** How datagrams are carried: 'batch' (recvmmsg/sendmmsg) or 'dgram'; known once start() bound the sockets. */
  io: 'batch' | 'dgram' = 'dgram';
  readonly #sockets: BoundSocket[] = [];
  readonly #options: NtpServiceOptions;
  readonly #responder: NtpResponder;
  // null for an empty list: BlockList.check() builds a SocketAddress per call (~1 µs, a tenth of a plain NTP
  // request's CPU), and an empty list can never match.
  #allow: BlockList | null;
  #deny: BlockList | null;
  // Counter cells taken once: building `name.label` keys per datagram was ~3% of a plain request's CPU.
  readonly #received: Counter;
  readonly #denied: Counter;
  readonly #badSourcePort: Counter;
  readonly #oversized: Counter;
  readonly #sendErrors: Counter;
  readonly #drops = new Map<string, Counter>();
  readonly #responses = new Map<string, Counter>();
  readonly #kod = new Map<string, Counter>();
  readonly #mac = new Map<string, Counter>();
  /** One callback for every send (a closure per datagram is garbage); only failures are counted. */
  readonly #onSent = (error: Error | null): void => {
    if (error) this.#sendErrors.inc();
  };

  constructor(options: NtpServiceOptions) {
    this.#options = options;
    const { rateLimit } = options.config;
    this.clients = new ClientTable({
      capacity: rateLimit.tableSize,
      rateLimit: { enabled: rateLimit.enabled, intervalMicros: rateLimit.intervalMs * 1000, burst: rateLimit.burst, kod: rateLimit.kod },
    });
    this.#responder = new NtpResponder({
      clients: this.clients,
      keyRing: options.keyRing,
      quality: options.quality,
      random: pooledRandom(),
      macKeys: macKeysOf(options.macKeys),
    });
    this.#received = this.counters.counter('received');
    this.#denied = this.counters.counter('denied');
    this.#badSourcePort = this.counters.counter('drops', 'bad_source_port');
    this.#oversized = this.counters.counter('drops', 'oversized');
    this.#sendErrors = this.counters.counter('send_errors');
    this.#allow = options.config.allow.length > 0 ? blockListOf(options.config.allow) : null;
    this.#deny = options.config.deny.length > 0 ? blockListOf(options.config.deny) : null;
  }

  /** Binds every address; on failure closes what was bound and throws a coded error naming the address. */
  async start(): Promise<Array<{ address: string; port: number }>> {
    const bound: Array<{ address: string; port: number }> = [];
    const native = this.#options.config.batchIo ? nativeUdpBatch() : undefined;
    if (native !== undefined && 'reason' in native) this.#options.logger.warn({ reason: native.reason }, 'NTP service: batched UDP unavailable, using dgram');
    this.io = native !== undefined && 'module' in native ? 'batch' : 'dgram';
    try {
      for (const [index, listen] of this.#options.config.listen.entries()) {
        bound.push(native !== undefined && 'module' in native ? await this.#bindBatch(native.module, listen, index) : await this.#bind(listen, index));
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
    return bound;
  }

  async stop(): Promise<void> {
    await Promise.all(this.#sockets.splice(0).map((s) => s.close()));
  }

  /** The error for a failed bind of `ntp.listen[index]`, naming the address and the key to change. */
  #bindError(error: NodeJS.ErrnoException, where: string, index: number): NtpServiceError {
    const key = `ntp.listen[${index}]`;
    if (error.code === 'EADDRINUSE') return new NtpServiceError('NTP_ADDRESS_IN_USE', `${key}: ${where} is already in use (another NTP server running?); change ${key}`);
    if (error.code === 'EACCES') return new NtpServiceError('NTP_PERMISSION_DENIED', `${key}: no permission to bind ${where} (ports below 1024 need root or CAP_NET_BIND_SERVICE); change ${key}`);
    if (error.code === 'EADDRNOTAVAIL') return new NtpServiceError('NTP_ADDRESS_NOT_AVAILABLE', `${key}: ${where} is not an address of this machine; change ${key}`);
    return new NtpServiceError('NTP_BIND_FAILED', `${key}: cannot bind ${where}: ${error.code ?? error.message}`);
  }

  async #bindBatch(module: NativeUdpModule, listen: HostPort, index: number): Promise<{ address: string; port: number }> {
    const { v6, where } = bindTarget(listen);
    let socket: UdpBatchSocket;
    let sendErrorsSeen = 0;
    try {
      // The native socket binds numeric addresses: a name is resolved first, as dgram does for udp4.
      const host = listen.family === 'name' ? (await dns.promises.lookup(listen.host, { family: 4 })).address : listen.host;
      socket = new UdpBatchSocket(module, {
        family: v6 ? 6 : 4,
        host,
        port: listen.port,
        slotSize: BATCH_SLOT_SIZE,
        onBatch: (batch) => {
          // Sends of the previous batch that failed, counted by the native side.
          const sendErrors = socket.sendErrors;
          if (sendErrors !== sendErrorsSeen) {
            this.#sendErrors.inc((sendErrors - sendErrorsSeen) >>> 0);
            sendErrorsSeen = sendErrors;
          }
          this.#onBatch(batch);
        },
      });
    } catch (error) {
      throw this.#bindError(error as NodeJS.ErrnoException, where, index);
    }
    this.#sockets.push(socket);
    return { address: socket.host, port: socket.port };
  }

  #bind(listen: HostPort, index: number): Promise<{ address: string; port: number }> {
    const { v6, where } = bindTarget(listen);
    // v6-only so that "[::]:123" and "0.0.0.0:123" can both be bound, as the defaults do.
    const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, reuseAddr: false, lookup: numericLookup(v6 ? 6 : 4) });
    return new Promise((resolve, reject) => {
      socket.once('error', (error: NodeJS.ErrnoException) => {
        socket.close();
        reject(this.#bindError(error, where, index));
      });
      socket.bind({ address: listen.host, port: listen.port, exclusive: true }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (error) => this.#options.logger.warn({ err: error, listen: where }, 'NTP socket error'));
        socket.on('message', (message, remote) => this.#onMessage(socket, message, remote));
        this.#sockets.push({ close: () => new Promise<void>((done) => socket.close(() => done())) });
        const address = socket.address();
        resolve({ address: address.address, port: address.port });
      });
    });
  }

  /** The cell of `name.label`, memoised per label in `cells`. */
  #cell(cells: Map<string, Counter>, name: NtpCounterName, label: string): Counter {
    let cell = cells.get(label);
    if (cell === undefined) {
      cell = this.counters.counter(name, label);
      cells.set(label, cell);
    }
    return cell;
  }

  #onMessage(socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void {
    // RFC 5905 §8: the receive timestamp is taken as early as possible.
    const receivedAt = this.#options.clock.nowMicros();
    this.#received.inc();
    // A plain Uint8Array view: the responder slices the datagram per field, and Buffer's subarray() is slower.
    const bytes = new Uint8Array(message.buffer, message.byteOffset, message.length);
    const reply = this.#answer(remote.address, remote.family === 'IPv6' ? 'ipv6' : 'ipv4', remote.port, bytes, receivedAt);
    if (reply === undefined) return;
    try {
      socket.send(reply, remote.port, remote.address, this.#onSent);
    } catch {
      // send() also throws synchronously (bad port or address, closed socket): never let a datagram stop us.
      this.#sendErrors.inc();
    }
  }

  #onBatch(batch: UdpBatch): void {
    const clock = this.#options.clock;
    // One clock read for the batch; each datagram's receive timestamp is that minus its age since the kernel
    // timestamped it (RFC 5905 §8: as early as possible), so waiting in the batch does not count.
    const batchStart = clock.nowMicros();
    for (let i = 0; i < batch.count; i++) {
      this.#received.inc();
      const length = batch.length(i);
      if (length < 0) {
        this.#oversized.inc();
        continue;
      }
      const age = batch.ageNanos(i);
      const receivedAt = age > 0 ? batchStart - Math.floor(age / 1000) : batchStart;
      const reply = this.#answer(batch.address(i), batch.family(i) === 6 ? 'ipv6' : 'ipv4', batch.port(i), batch.datagram(i), receivedAt);
      if (reply !== undefined && !batch.reply(i, reply)) this.#sendErrors.inc();
    }
  }

  /** The answer to one datagram, or undefined when it is dropped; counts the outcome either way. */
  #answer(address: string, family: 'ipv4' | 'ipv6', port: number, bytes: Uint8Array, receivedAt: number): Uint8Array | undefined {
    // Source port 0 cannot be answered (dgram's send() throws synchronously for it) and only comes from raw
    // or spoofed packets: drop it before any work. Unchecked, one such datagram crashed the daemon.
    if (port === 0) {
      this.#badSourcePort.inc();
      return undefined;
    }
    if ((this.#deny !== null && this.#deny.check(address, family)) || (this.#allow !== null && !this.#allow.check(address, family))) {
      this.#denied.inc();
      return undefined;
    }
    const decision = this.#responder.handle(address, bytes, receivedAt, this.#options.clock.nowMicros());
    if (decision.kind === 'drop') {
      this.#cell(this.#drops, 'drops', decision.reason).inc();
      if (decision.reason === 'rate_limited') this.#options.onRateLimited?.(address);
      return undefined;
    }
    if (decision.kiss !== undefined) {
      this.#cell(this.#kod, 'kod', decision.kiss).inc();
      if (decision.kiss === 'RATE') this.#options.onRateLimited?.(address);
    } else this.#cell(this.#responses, 'responses', decision.auth).inc();
    if (decision.mac !== undefined) this.#cell(this.#mac, 'mac', decision.mac.outcome).inc();
    return decision.bytes;
  }
}

/** The responder's resolver over the swappable getter: each MAC request reads the getter once. */
function macKeysOf(getter: (() => MacKeyResolver | undefined) | undefined): MacKeyResolver | undefined {
  if (getter === undefined) return undefined;
  return { resolve: (keyId, nowMicros) => getter()?.resolve(keyId, nowMicros) ?? NO_MAC_KEYS };
}
