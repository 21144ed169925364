/**
 * NTP and NTS time queries (RFC 5905 client mode, RFC 8915 §5.7), and `NtsClient`, which keeps its cookies
 * across queries. Library code: it prints nothing and throws `ClientError` with a stable code.
 *
 * On-wire rules applied to every answer (RFC 5905 §8): it must be server mode, its origin timestamp must equal
 * the transmit timestamp we sent, and its transmit timestamp must not be zero; anything else is ignored as a
 * stale or forged packet and we keep waiting until the timeout. Kiss-o'-death answers (stratum 0) are reported
 * with their code. With NTS, only answers whose authenticator verifies and whose Unique Identifier is ours
 * count; an NTS NAK (NTSN) makes the client run NTS-KE again.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { PreciseClock, type Clock } from '../clock/clock.js';
import { createAead, type Aead } from '../crypto/aead.js';
import { NTP_HEADER_LENGTH, NtpMode, decodeNtpHeader, encodeNtpHeader, kissCodeOf, kissCodeText, renderRefId, type NtpHeader } from '../proto/ntp/packet.js';
import { isZeroNtpTimestamp, ntpShortToMicros, ntpTimestampEquals, ntpTimestampToUnixMicros, unixMicrosToNtpTimestamp, NTP_TIMESTAMP_ZERO, type NtpTimestamp } from '../proto/ntp/timestamp.js';
import { buildNtsRequest, openNtsResponse } from '../proto/nts/client.js';
import { NTS_NONCE_LENGTH } from '../proto/nts/extension-fields.js';
import { ClientError } from './errors.js';
import { NTP_DEFAULT_PORT, ntsKeyExchange, type NtsKeOptions, type NtsKeResult } from './ntske.js';

export type Leap = 'none' | 'add' | 'delete' | 'unsynchronized';
const LEAPS: readonly Leap[] = ['none', 'add', 'delete', 'unsynchronized'];

export interface TimeSample {
  /** Server clock minus ours, seconds (RFC 5905 §8). */
  readonly offset: number;
  /** Round-trip delay, seconds. */
  readonly delay: number;
  readonly stratum: number;
  /** ASCII for stratum 0/1, dotted address (or hash) otherwise. */
  readonly refid: string;
  readonly leap: Leap;
  readonly version: number;
  readonly poll: number;
  readonly precision: number;
  /** Seconds. */
  readonly rootDelay: number;
  readonly rootDispersion: number;
  /** Unix seconds of the server's last update, null when unknown. */
  readonly referenceTime: number | null;
  /** The NTP server and port that answered. */
  readonly server: { readonly address: string; readonly port: number };
  readonly authentication: { readonly kind: 'none' } | { readonly kind: 'nts'; readonly aead: number; readonly aeadName: string };
}

export interface QueryOptions {
  readonly port?: number;
  /** Per sample. Default 3 s. */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

let sharedClock: Clock | undefined;
function defaultClock(): Clock {
  sharedClock ??= new PreciseClock();
  return sharedClock;
}

async function resolveAddress(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const literal = isIP(host);
  if (literal !== 0) return { address: host, family: literal as 4 | 6 };
  try {
    const found = await lookup(host);
    return { address: found.address, family: found.family === 6 ? 6 : 4 };
  } catch (error) {
    throw new ClientError('NTP_SOCKET', `cannot resolve ${host}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function clientHeader(transmit: NtpTimestamp): NtpHeader {
  return {
    leap: 3,
    version: 4,
    mode: NtpMode.Client,
    stratum: 0,
    poll: 0,
    precision: -20,
    rootDelay: 0,
    rootDispersion: 0,
    referenceId: 0,
    referenceTimestamp: NTP_TIMESTAMP_ZERO,
    originTimestamp: NTP_TIMESTAMP_ZERO,
    receiveTimestamp: NTP_TIMESTAMP_ZERO,
    transmitTimestamp: transmit,
  };
}

/** What one exchange needs from the caller: the request bytes, and a check that turns an answer into a header. */
interface Exchange {
  readonly request: Uint8Array;
  /** Null: not ours or not authentic, keep waiting. A ClientError: a definitive answer (KoD, NAK). */
  readonly accept: (bytes: Uint8Array) => NtpHeader | null | ClientError;
}

/** Sends one request and waits for the first acceptable answer; returns the header and T1/T4. */
async function exchange(address: string, family: 4 | 6, port: number, timeoutMs: number, clock: Clock, build: (t1: NtpTimestamp) => Exchange) {
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  const where = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  try {
    return await new Promise<{ header: NtpHeader; t1: number; t4: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ClientError('NTP_TIMEOUT', `no valid answer from ${where} within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // Fix: IPv6 addresses are bracketed here too; ECONNREFUSED (ICMP port unreachable) is said plainly.
        const reason = error.code === 'ECONNREFUSED' ? 'port unreachable (ECONNREFUSED)' : (error.code ?? error.message);
        reject(new ClientError('NTP_SOCKET', `socket error talking to ${where}: ${reason}`));
      });
      let t1 = 0;
      let pending: Exchange | undefined;
      socket.on('message', (message, remote) => {
        const t4 = clock.nowMicros();
        if (pending === undefined || remote.port !== port) return;
        const verdict = pending.accept(message);
        if (verdict === null) return;
        clearTimeout(timer);
        if (verdict instanceof ClientError) reject(verdict);
        else resolve({ header: verdict, t1, t4 });
      });
      socket.connect(port, address, () => {
        t1 = clock.nowMicros();
        pending = build(unixMicrosToNtpTimestamp(t1));
        socket.send(pending.request);
      });
    });
  } finally {
    socket.close();
  }
}

/** RFC 5905 §8 checks shared by plain and NTS answers, and the kiss-o'-death report. */
function checkHeader(header: NtpHeader, sent: NtpTimestamp, where: string): NtpHeader | null | ClientError {
  if (header.mode !== NtpMode.Server || !ntpTimestampEquals(header.originTimestamp, sent) || isZeroNtpTimestamp(header.transmitTimestamp)) return null;
  const kiss = kissCodeOf(header);
  if (kiss !== null) {
    const text = kissCodeText(kiss);
    // RFC 5905 §7.4: INIT and STEP say "not synchronised yet", not "go away".
    if (text === 'INIT' || text === 'STEP') return new ClientError('NTP_UNSYNCHRONIZED', `${where} is not synchronised yet (kiss code ${text})`, { kiss: text });
    return new ClientError('NTP_KISS', `${where} sent kiss-o'-death ${text}`, { kiss: text });
  }
  if (header.leap === 3 || header.stratum >= 16) return new ClientError('NTP_UNSYNCHRONIZED', `${where} is not synchronised (leap ${header.leap}, stratum ${header.stratum})`);
  return header;
}

function sampleOf(header: NtpHeader, t1: number, t4: number, server: { address: string; port: number }, authentication: TimeSample['authentication']): TimeSample {
  const t2 = ntpTimestampToUnixMicros(header.receiveTimestamp, t1) ?? t1;
  const t3 = ntpTimestampToUnixMicros(header.transmitTimestamp, t1) ?? t4;
  return {
    offset: (t2 - t1 + (t3 - t4)) / 2 / 1e6,
    delay: Math.max(0, t4 - t1 - (t3 - t2)) / 1e6,
    stratum: header.stratum,
    refid: renderRefId(header.referenceId, header.stratum),
    leap: LEAPS[header.leap] ?? 'unsynchronized',
    version: header.version,
    poll: header.poll,
    precision: header.precision,
    rootDelay: ntpShortToMicros(header.rootDelay) / 1e6,
    rootDispersion: ntpShortToMicros(header.rootDispersion) / 1e6,
    referenceTime: (() => {
      const micros = ntpTimestampToUnixMicros(header.referenceTimestamp, t1);
      return micros === null ? null : micros / 1e6;
    })(),
    server,
    authentication,
  };
}

/** One plain (unauthenticated) NTP query. */
export async function queryNtp(host: string, options: QueryOptions = {}): Promise<TimeSample> {
  const port = options.port ?? NTP_DEFAULT_PORT;
  const { address, family } = await resolveAddress(host);
  const clock = options.clock ?? defaultClock();
  const where = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  const { header, t1, t4 } = await exchange(address, family, port, options.timeoutMs ?? 3_000, clock, (sent) => ({
    request: encodeNtpHeader(clientHeader(sent)),
    accept: (bytes) => {
      const decoded = decodeNtpHeader(bytes);
      return decoded.ok ? checkHeader(decoded.value, sent, where) : null;
    },
  }));
  return sampleOf(header, t1, t4, { address, port }, { kind: 'none' });
}

export interface NtsClientOptions extends NtsKeOptions {
  /** Cookies to keep in the jar; placeholders ask for the difference (RFC 8915 §5.7). Default 8. */
  readonly cookieTarget?: number;
  /** Per NTP sample. Default 3 s. */
  readonly ntpTimeoutMs?: number;
  readonly clock?: Clock;
}

/**
 * An NTS client for one server: runs NTS-KE when it has no keys or cookies (or after an NTS NAK), then
 * queries time with one cookie per request, asking for enough new ones to keep `cookieTarget`.
 */
export class NtsClient {
  #ke: NtsKeResult | undefined;
  #c2s: Aead | undefined;
  #s2c: Aead | undefined;
  #cookies: Uint8Array[] = [];
  #ntpAddress: { address: string; family: 4 | 6 } | undefined;
  /** NTS-KE exchanges run so far. */
  keyExchanges = 0;

  constructor(
    readonly host: string,
    private readonly options: NtsClientOptions = {},
  ) {}

  /** Cookies in the jar. */
  get cookieCount(): number {
    return this.#cookies.length;
  }

  /** The last NTS-KE result (keys included), if any. */
  get keyExchange(): NtsKeResult | undefined {
    return this.#ke;
  }

  /** Runs NTS-KE now, replacing keys and cookies. */
  async rekey(): Promise<NtsKeResult> {
    const ke = await ntsKeyExchange(this.host, this.options);
    this.keyExchanges++;
    this.#ke = ke;
    this.#c2s = createAead(ke.aead.id, ke.c2s);
    this.#s2c = createAead(ke.aead.id, ke.s2c);
    this.#cookies = [...ke.cookies];
    this.#ntpAddress = await resolveAddress(ke.ntpHost);
    return ke;
  }

  /** One authenticated sample; re-keys once on an NTS NAK or an empty cookie jar. */
  async query(): Promise<TimeSample> {
    if (this.#ke === undefined || this.#cookies.length === 0) await this.rekey();
    try {
      return await this.#query();
    } catch (error) {
      if (error instanceof ClientError && error.code === 'NTP_KISS' && error.details['kiss'] === 'NTSN') {
        await this.rekey();
        return this.#query();
      }
      throw error;
    }
  }

  async #query(): Promise<TimeSample> {
    const ke = this.#ke as NtsKeResult;
    const c2s = this.#c2s as Aead;
    const s2c = this.#s2c as Aead;
    const { address, family } = this.#ntpAddress as { address: string; family: 4 | 6 };
    const cookie = this.#cookies.shift();
    if (cookie === undefined) throw new ClientError('NTS_NO_COOKIES', 'no NTS cookies left');
    const placeholders = Math.max(0, (this.options.cookieTarget ?? 8) - this.#cookies.length - 1);
    const uniqueIdentifier = new Uint8Array(randomBytes(32));
    const where = family === 6 ? `[${address}]:${ke.ntpPort}` : `${address}:${ke.ntpPort}`;
    let fresh: readonly Uint8Array[] = [];
    const { header, t1, t4 } = await exchange(address, family, ke.ntpPort, this.options.ntpTimeoutMs ?? 3_000, this.options.clock ?? defaultClock(), (sent) => ({
      request: buildNtsRequest({ header: clientHeader(sent), uniqueIdentifier, cookie, placeholders, c2s, nonce: new Uint8Array(randomBytes(NTS_NONCE_LENGTH)) }),
      accept: (bytes) => {
        if (bytes.length < NTP_HEADER_LENGTH) return null;
        const opened = openNtsResponse(bytes, uniqueIdentifier, s2c);
        if (!opened.ok) return null; // forged, tampered or someone else's: keep waiting (RFC 8915 §5.7)
        const checked = checkHeader(opened.value.header, sent, where);
        if (opened.value.kind === 'nak') return checked instanceof ClientError ? checked : null;
        if (checked !== null && !(checked instanceof ClientError)) fresh = opened.value.cookies;
        return checked;
      },
    }));
    // Fix: never more than the target, even from a server that sends more cookies than it was asked for (the
    // jar used to grow by whatever each answer carried).
    this.#cookies.push(...fresh.slice(0, Math.max(0, (this.options.cookieTarget ?? 8) - this.#cookies.length)));
    return sampleOf(header, t1, t4, { address, port: ke.ntpPort }, { kind: 'nts', aead: ke.aead.id, aeadName: ke.aead.name });
  }
}

export interface TimeQueryOptions extends NtsClientOptions {
  /** NTP port for plain queries (NTS learns it from NTS-KE). */
  readonly port?: number;
  readonly nts?: boolean;
  /** Samples to take; the one with the smallest delay is returned. Default 1. */
  readonly samples?: number;
  /** Pause between samples. Default 250 ms (servers rate-limit bursts). */
  readonly intervalMs?: number;
}

/** Queries `host` `samples` times (plain or NTS) and returns the best-delay sample with all of them. */
export async function queryTime(host: string, options: TimeQueryOptions = {}): Promise<TimeSample & { readonly samples: readonly TimeSample[]; readonly ke?: NtsKeResult }> {
  const count = Math.max(1, options.samples ?? 1);
  const samples: TimeSample[] = [];
  const nts = options.nts === true ? new NtsClient(host, options) : undefined;
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
    samples.push(
      nts !== undefined
        ? await nts.query()
        : await queryNtp(host, { port: options.port ?? NTP_DEFAULT_PORT, timeoutMs: options.ntpTimeoutMs ?? options.timeoutMs ?? 3_000, ...(options.clock ? { clock: options.clock } : {}) }),
    );
  }
  const best = samples.reduce((a, b) => (b.delay < a.delay ? b : a));
  return { ...best, samples, ...(nts?.keyExchange !== undefined ? { ke: nts.keyExchange } : {}) };
}
