/**
 * The load generator process of `npm run bench -- server`, forked with an IPC channel: it runs one phase per
 * `PhaseRequest` and answers with a `PhaseResult`. It runs apart from the servers so that their CPU time, read
 * from /proc at the edges of the measured window, is theirs alone.
 *
 * Every phase: setup (NTS: one NTS-KE per client for keys and cookies), warm-up under full load, the measured
 * window (counts, server CPU and our own CPU taken at both edges), then a drain: no new requests, outstanding
 * ones get `timeoutMs` to come back.
 *
 * - ntp: `sockets` connected UDP sockets, `window` 48-byte client requests outstanding on each; a response must
 *   be mode 4 version 4 with a stratum 1..15, non-zero receive/transmit timestamps and our transmit timestamp
 *   as origin (which also matches it to its request).
 * - nts: `sockets` clients, each with its own NTS-KE session and cookie pool; a request spends one cookie (no
 *   placeholders), so each response carries one new cookie. Every `verifyEvery`th response is opened with
 *   openNtsResponse (authenticator, unique identifier, the new cookie goes to the pool); the others get the
 *   header checks and their spent cookie goes back to the pool (servers accept a cookie more than once).
 * - ntske: `concurrency` loops of full NTS-KE exchanges (new TLS 1.3 connection each time, no resumption).
 * With `rate` > 0 requests (connections) start at that pace instead, still within the window (concurrency).
 */
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createAead, type Aead } from '../../src/crypto/aead.js';
import type { NtpHeader } from '../../src/proto/ntp/packet.js';
import { NTP_TIMESTAMP_ZERO } from '../../src/proto/ntp/timestamp.js';
import { buildNtsRequest, openNtsResponse } from '../../src/proto/nts/client.js';
import { NtsKeFailure, ntsKeExchange, type NtsKeSession, type NtsKeTarget } from './ntske-client.js';
import { cpuMicros, processGroupMembers } from './procstat.js';
import type { GeneratorReply, PhaseRequest, PhaseResult } from './protocol.js';

const NTP_UNIX_OFFSET = 2_208_988_800;

interface Load {
  /** Valid responses / exchanges so far. */
  readonly ok: number;
  readonly verified: number;
  readonly timeouts: number;
  readonly errors: Record<string, number>;
  readonly keExchanges: number;
  /** Requests sent (connections opened) so far; never more than `maxOperations`. */
  readonly sent: number;
  start(): void;
  /** Stops sending and waits for what is outstanding (at most the timeout). */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Paces starts at `rate` per second from the first `start()`; rate 0 means no pacing. */
class Pacer {
  #t0 = 0;
  #issued = 0;
  constructor(readonly rate: number) {}

  start(): void {
    this.#t0 = performance.now();
  }

  /** Takes one start if one is due now. */
  take(): boolean {
    if (this.rate <= 0) return true;
    if (this.#issued >= ((performance.now() - this.#t0) * this.rate) / 1000) return false;
    this.#issued++;
    return true;
  }

  /** Claims the next start and waits until it is due. */
  async next(): Promise<void> {
    if (this.rate <= 0) return;
    const due = this.#t0 + (this.#issued++ * 1000) / this.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

function bump(errors: Record<string, number>, reason: string): void {
  errors[reason] = (errors[reason] ?? 0) + 1;
}

/** Random bytes carved from 64 KiB blocks; a block is never refilled, so handed-out views stay valid. */
function randomSource(): (n: number) => Uint8Array {
  let block = randomFillSync(Buffer.allocUnsafeSlow(65536));
  let used = 0;
  return (n) => {
    if (used + n > block.length) {
      block = randomFillSync(Buffer.allocUnsafeSlow(65536));
      used = 0;
    }
    const out = block.subarray(used, used + n);
    used += n;
    return out;
  };
}

/** Checks a server-mode response header against the request's transmit timestamp; returns a reason or null. */
function headerProblem(msg: Uint8Array, seconds: number, fraction: number): string | null {
  if (msg.length < 48) return 'short';
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const first = msg[0] as number;
  if ((first & 7) !== 4) return 'mode';
  if (((first >> 3) & 7) !== 4) return 'version';
  const stratum = msg[1] as number;
  if (stratum === 0) return 'kiss';
  if (stratum > 15) return 'unsynchronized';
  if (view.getUint32(24) !== seconds || view.getUint32(28) !== fraction) return 'origin';
  if (view.getUint32(32) === 0 || view.getUint32(40) === 0) return 'timestamps';
  return null;
}

interface Outstanding {
  readonly sentAt: number;
  readonly uid?: Uint8Array;
  readonly cookie?: Uint8Array;
  /** NTS: the session whose cookie and keys the request used. */
  readonly session?: NtsSession;
}

/** Shared machinery of the two UDP loads: sockets, outstanding maps keyed by the transmit fraction, timeouts. */
abstract class UdpLoad implements Load {
  ok = 0;
  sent = 0;
  verified = 0;
  timeouts = 0;
  keExchanges = 0;
  readonly errors: Record<string, number> = {};
  protected running = false;
  protected seq = 1;
  protected readonly seconds = (Math.floor(Date.now() / 1000) + NTP_UNIX_OFFSET) >>> 0;
  #sweeper: NodeJS.Timeout | undefined;
  #ticker: NodeJS.Timeout | undefined;
  protected readonly pacer: Pacer;

  constructor(protected readonly req: PhaseRequest) {
    this.pacer = new Pacer(req.rate);
  }

  protected abstract clients(): Iterable<{ readonly outstanding: Map<number, Outstanding> }>;
  protected abstract fill(client: unknown): void;
  protected abstract onTimeout(client: unknown, entry: Outstanding): void;

  /** The sequence number of a new request (its transmit timestamp fraction), or undefined at the cap. */
  protected nextSeq(): number | undefined {
    if (this.sent >= this.req.maxOperations || !this.pacer.take()) return undefined;
    this.sent++;
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  /** A UDP socket connected to the server (send() on it is only allowed once connected). */
  protected openSocket(port: number, host: string, onMessage: (msg: Buffer) => void): Promise<dgram.Socket> {
    const socket = dgram.createSocket('udp4');
    socket.on('message', onMessage);
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, host, () => {
        socket.removeListener('error', reject);
        socket.on('error', (error: NodeJS.ErrnoException) => bump(this.errors, error.code ?? 'socket_error'));
        resolve(socket);
      });
    });
  }

  start(): void {
    this.running = true;
    this.pacer.start();
    for (const client of this.clients()) this.fill(client);
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.min(100, this.req.timeoutMs / 4)));
    // Paced: responses do not release new requests by themselves; a 1 ms tick hands out what is due.
    if (this.req.rate > 0) this.#ticker = setInterval(() => {
      for (const client of this.clients()) this.fill(client);
    }, 1);
  }

  #sweep(): void {
    const deadline = performance.now() - this.req.timeoutMs;
    for (const client of this.clients()) {
      let expired = 0;
      for (const [seq, entry] of client.outstanding) {
        if (entry.sentAt > deadline) break; // insertion order is send order
        client.outstanding.delete(seq);
        this.timeouts++;
        this.onTimeout(client, entry);
        expired++;
      }
      if (expired > 0 && this.running) this.fill(client);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    const until = performance.now() + this.req.timeoutMs + 50;
    while (performance.now() < until && [...this.clients()].some((c) => c.outstanding.size > 0)) await sleep(10);
    this.#sweep();
    clearInterval(this.#sweeper);
    clearInterval(this.#ticker);
    this.close();
  }

  protected abstract close(): void;
}

interface NtpClient {
  socket: dgram.Socket;
  readonly outstanding: Map<number, Outstanding>;
}

class NtpLoad extends UdpLoad {
  readonly #sockets: NtpClient[] = [];

  async setup(): Promise<void> {
    for (let i = 0; i < this.req.sockets; i++) {
      const client: NtpClient = { socket: undefined as unknown as dgram.Socket, outstanding: new Map() };
      client.socket = await this.openSocket(this.req.ntpPort, this.req.host, (msg) => this.#onMessage(client, msg));
      this.#sockets.push(client);
    }
  }

  protected clients() {
    return this.#sockets;
  }

  protected fill(client: NtpClient): void {
    while (this.running && client.outstanding.size < this.req.window) {
      const seq = this.nextSeq();
      if (seq === undefined) return;
      const request = Buffer.alloc(48);
      request[0] = (4 << 3) | 3; // version 4, client mode
      request.writeUInt32BE(this.seconds, 40);
      request.writeUInt32BE(seq, 44);
      client.outstanding.set(seq, { sentAt: performance.now() });
      client.socket.send(request);
    }
  }

  protected onTimeout(): void {}

  #onMessage(client: NtpClient, msg: Buffer): void {
    const seq = msg.length >= 48 ? msg.readUInt32BE(28) : -1;
    if (!client.outstanding.delete(seq)) {
      bump(this.errors, 'unmatched');
      return;
    }
    const problem = headerProblem(msg, this.seconds, seq);
    if (problem === null) this.ok++;
    else bump(this.errors, problem);
    this.fill(client);
  }

  protected close(): void {
    for (const { socket } of this.#sockets) socket.close();
  }
}

/** One NTS-KE session: its keys and cookie pool. */
interface NtsSession {
  c2s: Aead;
  s2c: Aead;
  cookies: Uint8Array[];
  /** Requests of this session in flight. */
  outstanding: number;
  rekeying: boolean;
}

/** One UDP socket with `sessions.length` NTS sessions, used in turn (round robin) by its requests. */
interface NtsClient {
  socket: dgram.Socket;
  readonly outstanding: Map<number, Outstanding>;
  readonly sessions: NtsSession[];
  next: number;
  responses: number;
}

class NtsLoad extends UdpLoad {
  readonly #clients: NtsClient[] = [];
  readonly #random = randomSource();
  readonly #target: NtsKeTarget;

  constructor(req: PhaseRequest) {
    super(req);
    this.#target = { host: req.host, port: req.kePort, caPem: req.caPem, servername: req.servername, timeoutMs: Math.max(2000, req.timeoutMs) };
  }

  async setup(): Promise<void> {
    // ntsSessions NTS-KE exchanges, at most 8 at once, dealt to the sockets in turn.
    const total = Math.max(this.req.sockets, this.req.ntsSessions ?? this.req.sockets);
    const results: NtsKeSession[] = [];
    let started = 0;
    const worker = async () => {
      while (started < total) {
        started++;
        results.push(await this.#exchange());
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, total) }, worker));
    for (let i = 0; i < this.req.sockets; i++) {
      const first = results[i] as NtsKeSession;
      const client: NtsClient = { socket: undefined as unknown as dgram.Socket, outstanding: new Map(), sessions: [], next: 0, responses: 0 };
      for (let j = i; j < results.length; j += this.req.sockets) {
        const session = results[j] as NtsKeSession;
        client.sessions.push({ c2s: createAead(session.aead, session.c2s), s2c: createAead(session.aead, session.s2c), cookies: session.cookies, outstanding: 0, rekeying: false });
      }
      client.socket = await this.openSocket(first.ntpPort, first.ntpHost, (msg) => this.#onMessage(client, msg));
      this.#clients.push(client);
    }
  }

  async #exchange(): Promise<NtsKeSession> {
    this.keExchanges++;
    return ntsKeExchange(this.#target);
  }

  protected clients() {
    return this.#clients;
  }

  protected fill(client: NtsClient): void {
    const window = Math.min(this.req.window, 8);
    while (this.running && client.outstanding.size < window) {
      // The next session in turn that has a cookie; one without cookies and requests in flight re-keys.
      let session: NtsSession | undefined;
      for (let tries = 0; tries < client.sessions.length && session === undefined; tries++) {
        const candidate = client.sessions[client.next] as NtsSession;
        client.next = (client.next + 1) % client.sessions.length;
        if (candidate.cookies.length > 0) session = candidate;
        else if (candidate.outstanding === 0) this.#rekey(client, candidate);
      }
      if (session === undefined) return;
      const seq = this.nextSeq();
      if (seq === undefined) return;
      const cookie = session.cookies.pop() as Uint8Array;
      const uid = this.#random(32);
      const header: NtpHeader = {
        leap: 0,
        version: 4,
        mode: 3,
        stratum: 0,
        poll: 0,
        precision: 0,
        rootDelay: 0,
        rootDispersion: 0,
        referenceId: 0,
        referenceTimestamp: NTP_TIMESTAMP_ZERO,
        originTimestamp: NTP_TIMESTAMP_ZERO,
        receiveTimestamp: NTP_TIMESTAMP_ZERO,
        transmitTimestamp: { seconds: this.seconds, fraction: seq },
      };
      const request = buildNtsRequest({ header, uniqueIdentifier: uid, cookie, placeholders: 0, c2s: session.c2s, nonce: this.#random(16) });
      session.outstanding++;
      client.outstanding.set(seq, { sentAt: performance.now(), uid, cookie, session });
      client.socket.send(request);
    }
  }

  /** A lost request took its cookie with it; with none left and nothing in flight, run NTS-KE again. */
  protected onTimeout(_client: NtsClient, entry: Outstanding): void {
    if (entry.session !== undefined) entry.session.outstanding--;
  }

  #rekey(client: NtsClient, session: NtsSession): void {
    if (session.rekeying) return;
    session.rekeying = true;
    this.#exchange().then(
      (fresh) => {
        session.c2s = createAead(fresh.aead, fresh.c2s);
        session.s2c = createAead(fresh.aead, fresh.s2c);
        session.cookies = fresh.cookies;
        session.rekeying = false;
        this.fill(client);
      },
      (error: unknown) => {
        bump(this.errors, `rekey_${error instanceof NtsKeFailure ? error.code : 'error'}`);
        session.rekeying = false;
        if (this.running) setTimeout(() => this.#rekey(client, session), 100);
      },
    );
  }

  #onMessage(client: NtsClient, msg: Buffer): void {
    const seq = msg.length >= 48 ? msg.readUInt32BE(28) : -1;
    const entry = client.outstanding.get(seq);
    if (entry === undefined) {
      bump(this.errors, 'unmatched');
      return;
    }
    client.outstanding.delete(seq);
    const session = entry.session as NtsSession;
    session.outstanding--;
    const problem = headerProblem(msg, this.seconds, seq);
    if (problem !== null) {
      bump(this.errors, problem);
    } else if (client.responses++ % this.req.verifyEvery === 0) {
      const opened = openNtsResponse(msg, entry.uid as Uint8Array, session.s2c);
      if (!opened.ok) bump(this.errors, opened.error.code);
      else if (opened.value.kind === 'nak') bump(this.errors, 'nts_nak');
      else if (opened.value.cookies.length !== 1) bump(this.errors, `cookies_${opened.value.cookies.length}`);
      else {
        session.cookies.push(...opened.value.cookies);
        this.verified++;
        this.ok++;
      }
    } else if (msg.length <= 48) {
      bump(this.errors, 'no_nts_fields');
    } else {
      session.cookies.push(entry.cookie as Uint8Array);
      this.ok++;
    }
    this.fill(client);
  }

  protected close(): void {
    for (const { socket } of this.#clients) socket.close();
  }
}

class NtsKeLoad implements Load {
  ok = 0;
  sent = 0;
  readonly verified = 0;
  timeouts = 0;
  keExchanges = 0;
  readonly errors: Record<string, number> = {};
  #running = false;
  readonly #loops: Promise<void>[] = [];
  readonly #target: NtsKeTarget;
  readonly #pacer: Pacer;

  constructor(private readonly req: PhaseRequest) {
    this.#target = { host: req.host, port: req.kePort, caPem: req.caPem, servername: req.servername, timeoutMs: req.timeoutMs };
    this.#pacer = new Pacer(req.rate);
  }

  start(): void {
    this.#running = true;
    this.#pacer.start();
    for (let i = 0; i < this.req.concurrency; i++) this.#loops.push(this.#loop());
  }

  async #loop(): Promise<void> {
    while (this.#running && this.sent < this.req.maxOperations) {
      await this.#pacer.next();
      if (!this.#running) break;
      this.sent++;
      this.keExchanges++;
      try {
        const session = await ntsKeExchange(this.#target);
        if (session.cookies.length === 8) this.ok++;
        else bump(this.errors, `cookies_${session.cookies.length}`);
      } catch (error) {
        const code = error instanceof NtsKeFailure ? error.code : 'error';
        if (code === 'timeout') this.timeouts++;
        else bump(this.errors, code);
        await sleep(10); // do not spin on a refusing server
      }
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }
}

async function runPhase(req: PhaseRequest): Promise<PhaseResult> {
  let load: Load;
  if (req.op === 'ntske') load = new NtsKeLoad(req);
  else {
    const udp = req.op === 'ntp' ? new NtpLoad(req) : new NtsLoad(req);
    await udp.setup();
    load = udp;
  }

  load.start();
  await sleep(req.warmupMs);
  const pids = processGroupMembers(req.serverPgid);
  if (pids.length === 0) throw new Error(`no process left in group ${req.serverPgid}: did the server die?`);
  const ok0 = load.ok;
  const gen0 = process.cpuUsage();
  const cpu0 = cpuMicros(pids);
  const t0 = performance.now();
  await sleep(req.measureMs);
  const t1 = performance.now();
  const cpu1 = cpuMicros(pids);
  const gen1 = process.cpuUsage(gen0);
  const ok1 = load.ok;
  await load.stop();
  return {
    type: 'result',
    op: req.op,
    server: req.server,
    completed: ok1 - ok0,
    windowMs: t1 - t0,
    serverCpuUs: cpu1 - cpu0,
    generatorCpuUs: gen1.user + gen1.system,
    errors: load.errors,
    timeouts: load.timeouts,
    verified: load.verified,
    totalCompleted: load.ok,
    keExchanges: load.keExchanges,
    serverPids: pids,
    capped: load.sent >= req.maxOperations,
  };
}

const send = (reply: GeneratorReply) => process.send?.(reply);
process.on('message', (req: PhaseRequest) => {
  runPhase(req).then(send, (error: unknown) =>
    send({ type: 'failure', op: req.op, server: req.server, message: error instanceof Error ? `${error.message}${error instanceof NtsKeFailure ? ` (${error.code})` : ''}` : String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
