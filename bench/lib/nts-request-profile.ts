/**
 * In-process cost of the NTP responder: CPU µs per `NtpResponder.handle` call for plain NTP and NTS requests,
 * with no sockets involved. Requests are built beforehand with the project's NTS client code, one cookie per
 * session over many distinct sessions (so nothing per-session stays warm), and handed to the responder round
 * robin. Also times the node:crypto building blocks an NTS request uses, to show where the microseconds go.
 *
 *   node --import tsx bench/lib/nts-request-profile.ts [--seconds S] [--sessions N] [--rounds R] [--only ntp|nts]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/lib/nts-request-profile.ts --only nts
 *
 * CPU time (process.cpuUsage) rather than wall time, because the machine may be shared; each figure is the
 * median of R rounds.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { AEAD_AES_SIV_CMAC_256, createAead } from '../../src/crypto/aead.js';
import { Cmac } from '../../src/crypto/cmac.js';
import { KeyRing } from '../../src/crypto/keyring.js';
import { ClientTable } from '../../src/proto/ntp/client-table.js';
import { type NtpHeader, encodeNtpHeader } from '../../src/proto/ntp/packet.js';
import { NtpResponder, type TimeQuality } from '../../src/proto/ntp/server.js';
import { buildNtsRequest, openNtsResponse } from '../../src/proto/nts/client.js';
import { COOKIE_NONCE_LENGTH, sealCookie } from '../../src/proto/nts/cookie.js';
import { NTS_NONCE_LENGTH } from '../../src/proto/nts/extension-fields.js';
import { clientHeader } from '../../test/helpers/nts-client.js';

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? (process.argv[i + 1] as string) : fallback;
}

const seconds = Number(arg('seconds', '1'));
const sessions = Number(arg('sessions', '2000'));
const rounds = Number(arg('rounds', '5'));
const only = arg('only', 'all');

const START = 1_750_000_000_123_456;
const QUALITY: TimeQuality = { leap: 'none', stratum: 2, refid: 0xc000_0201, precision: -20, rootDelayMicros: 1500, rootDispersionMicros: 250_000, referenceTimeMicros: START - 64e6 };

/** Client request header number `i`: a distinct transmit timestamp per request. */
const requestHeader = (i: number): NtpHeader => clientHeader({ seconds: 0xeb12_3456, fraction: (0x89ab_cdef + i) >>> 0 });

const ring = KeyRing.create(START, random);
const clients = new ClientTable({ capacity: 4096, rateLimit: { enabled: false, intervalMicros: 1e6, burst: 1, kod: true } });
// The daemon draws nonces from a pooled buffer; an equivalent here keeps randomBytes' own cost out.
const pool = randomBytes(1 << 20);
let poolAt = 0;
const pooled = (n: number): Uint8Array => {
  if (poolAt + n > pool.length) poolAt = 0;
  const out = new Uint8Array(n);
  out.set(pool.subarray(poolAt, poolAt + n));
  poolAt += n;
  return out;
};
const responder = new NtpResponder({ clients, keyRing: () => ring, quality: () => QUALITY, random: pooled });

interface Prepared {
  bytes: Uint8Array;
  address: string;
}

function ntsRequests(placeholders: number): { requests: Prepared[]; check: (i: number, out: Uint8Array) => void } {
  const requests: Prepared[] = [];
  const s2cs: ReturnType<typeof createAead>[] = [];
  const uids: Uint8Array[] = [];
  for (let i = 0; i < sessions; i++) {
    const keys = { aead: AEAD_AES_SIV_CMAC_256, c2s: random(32), s2c: random(32) };
    const cookie = sealCookie(ring, keys, random(COOKIE_NONCE_LENGTH));
    const uid = random(32);
    const bytes = buildNtsRequest({ header: requestHeader(i), uniqueIdentifier: uid, cookie, placeholders, c2s: createAead(AEAD_AES_SIV_CMAC_256, keys.c2s), nonce: random(NTS_NONCE_LENGTH) });
    requests.push({ bytes, address: `10.0.${(i >> 8) & 0xff}.${i & 0xff}` });
    s2cs.push(createAead(AEAD_AES_SIV_CMAC_256, keys.s2c));
    uids.push(uid);
  }
  const check = (i: number, out: Uint8Array) => {
    const opened = openNtsResponse(out, uids[i] as Uint8Array, s2cs[i] as ReturnType<typeof createAead>);
    if (!opened.ok || opened.value.kind !== 'ok' || opened.value.cookies.length !== 1 + placeholders) throw new Error(`bad NTS response to request ${i}`);
  };
  return { requests, check };
}

function plainRequests(): Prepared[] {
  const out: Prepared[] = [];
  for (let i = 0; i < sessions; i++) out.push({ bytes: new Uint8Array(encodeNtpHeader(requestHeader(i))), address: `10.1.${(i >> 8) & 0xff}.${i & 0xff}` });
  return out;
}

/** CPU µs per call of `op(i)` over about `seconds` seconds. */
function cpuPerOp(op: (i: number) => void, n: number): number {
  // Warm-up, then batches until the CPU budget is spent.
  for (let i = 0; i < Math.min(n, 2000); i++) op(i % n);
  const start = process.cpuUsage();
  let ops = 0;
  let used = 0;
  while (used < seconds * 1e6) {
    for (let i = 0; i < 1000; i++) op((ops + i) % n);
    ops += 1000;
    const u = process.cpuUsage(start);
    used = u.user + u.system;
  }
  return used / ops;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1] as number;
}

function report(name: string, op: (i: number) => void, n: number): void {
  const figures: number[] = [];
  for (let r = 0; r < rounds; r++) figures.push(cpuPerOp(op, n));
  console.log(`${name.padEnd(44)} ${median(figures).toFixed(2).padStart(7)} µs/op  (rounds: ${figures.map((f) => f.toFixed(2)).join(' ')})`);
}

function handleOp(requests: Prepared[]): (i: number) => void {
  let rx = START;
  return (i) => {
    const r = requests[i] as Prepared;
    rx += 1000;
    const d = responder.handle(r.address, r.bytes, rx, rx + 20);
    if (d.kind !== 'respond') throw new Error(`no response: ${JSON.stringify(d)}`);
  };
}

console.log(`NtpResponder.handle, ${sessions} sessions/clients round robin, median of ${rounds} x ${seconds} s CPU, node ${process.version}`);
if (only === 'all' || only === 'ntp') {
  report('plain NTP', handleOp(plainRequests()), sessions);
}
if (only === 'all' || only === 'nts') {
  const nts0 = ntsRequests(0);
  // Every response must verify before anything is timed.
  for (let i = 0; i < sessions; i++) {
    const r = nts0.requests[i] as Prepared;
    const d = responder.handle(r.address, r.bytes, START, START + 20);
    if (d.kind !== 'respond' || d.auth !== 'nts') throw new Error('NTS request not answered');
    nts0.check(i, d.bytes);
  }
  report('NTS, 0 placeholders', handleOp(nts0.requests), sessions);
  if (only === 'all') {
    const nts7 = ntsRequests(7);
    for (let i = 0; i < 50; i++) {
      const r = nts7.requests[i] as Prepared;
      const d = responder.handle(r.address, r.bytes, START, START + 20);
      if (d.kind !== 'respond') throw new Error('NTS request not answered');
      nts7.check(i, d.bytes);
    }
    report('NTS, 7 placeholders', handleOp(nts7.requests), sessions);
  }
}
if (only === 'all' || only === 'parts') {
  const keys = Array.from({ length: sessions }, () => randomBytes(32));
  const halves = keys.map((k) => k.subarray(0, 16));
  const block = new Uint8Array(16);
  const zeroIv = new Uint8Array(16);
  const msg = randomBytes(192);
  report('  createCipheriv aes-128-ecb (fresh key)', (i) => createCipheriv('aes-128-ecb', halves[i] as Buffer, null), sessions);
  report('  createCipheriv aes-128-cbc (fresh key)', (i) => createCipheriv('aes-128-cbc', halves[i] as Buffer, zeroIv), sessions);
  const ecb = createCipheriv('aes-128-ecb', halves[0] as Buffer, null).setAutoPadding(false);
  report('  ecb.update(16 bytes), reused cipher', () => ecb.update(block), sessions);
  report('  ecb.update(192 bytes), reused cipher', () => ecb.update(msg), sessions);
  const mac = new Cmac(halves[0] as Buffer);
  report('  Cmac.mac(192 bytes), reused', () => mac.mac(msg), sessions);
  report('  new Cmac (fresh key)', (i) => new Cmac(halves[i] as Buffer), sessions);
  report('  createAead (fresh key)', (i) => createAead(AEAD_AES_SIV_CMAC_256, keys[i] as Buffer), sessions);
}
