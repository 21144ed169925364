/**
 * `npm run bench -- crypto [--time=MS] [--json]`: AES-SIV-CMAC-256 seal/open of an NTS-sized NTP
 * message (48-byte header as AD, 16-byte nonce, 104-byte plaintext) and AES-128-CMAC of a 48-byte
 * NTP packet, ours against miscreant 0.3.2 in the same process on the same inputs.
 *
 * miscreant runs with both of its providers: `polyfill` (its pure JavaScript AES) and `webcrypto`
 * (Node's WebCrypto, one async call per AES block). The ratio is against the faster of the two.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { AEAD_AES_SIV_CMAC_256, createAead } from '../src/crypto/aead.js';
import { Cmac } from '../src/crypto/cmac.js';

interface MiscreantAead {
  seal(plaintext: Uint8Array, nonce: Uint8Array, associatedData?: Uint8Array): Promise<Uint8Array>;
  open(sealed: Uint8Array, nonce: Uint8Array, associatedData?: Uint8Array): Promise<Uint8Array>;
}
interface MiscreantCmac {
  reset(): MiscreantCmac;
  update(data: Uint8Array): Promise<MiscreantCmac>;
  finish(): Promise<Uint8Array>;
}
interface Miscreant {
  AEAD: { importKey(key: Uint8Array, alg: 'AES-SIV', provider: unknown): Promise<MiscreantAead> };
  CMAC: { importKey(provider: unknown, key: Uint8Array): Promise<MiscreantCmac> };
  PolyfillCryptoProvider: new () => unknown;
  WebCryptoProvider: new (crypto: unknown) => unknown;
}

type Op = () => unknown;

/** Runs `op` for `ms` milliseconds (after a warm-up of a fifth of that) and returns operations per second. */
async function measure(op: Op, ms: number): Promise<number> {
  const first = op();
  const isAsync = first instanceof Promise;
  if (isAsync) await first;
  const loop = async (budget: number): Promise<number> => {
    let n = 0;
    let batch = 1;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < budget) {
      if (isAsync) for (let i = 0; i < batch; i++) await op();
      else for (let i = 0; i < batch; i++) op();
      n += batch;
      elapsed = performance.now() - start;
      // Grow the batch so the clock is read about every millisecond.
      if (elapsed < 1 && batch < 1 << 20) batch *= 2;
    }
    return (n * 1000) / elapsed;
  };
  await loop(ms / 5);
  return loop(ms);
}

function fmt(opsPerSecond: number | undefined): string {
  if (opsPerSecond === undefined) return '-';
  return Math.round(opsPerSecond).toLocaleString('en-US');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

export async function run(args: string[]): Promise<void> {
  const timeArg = args.find((a) => a.startsWith('--time='));
  const ms = timeArg === undefined ? 1000 : Math.max(50, Number(timeArg.slice('--time='.length)) || 1000);
  const json = args.includes('--json');

  const name: string = 'miscreant'; // untyped import: its shipped .ts sources do not compile under our tsconfig
  const lib = (await import(name)) as Miscreant;
  const providers = { polyfill: new lib.PolyfillCryptoProvider(), webcrypto: new lib.WebCryptoProvider(globalThis.crypto) };

  const key = randomBytes(32);
  const header = randomBytes(48); // the NTP header, authenticated as AD
  const nonce = randomBytes(16);
  const plaintext = randomBytes(104); // e.g. encrypted extension fields
  const ours = createAead(AEAD_AES_SIV_CMAC_256, key);
  const sealed = ours.seal(nonce, plaintext, header);

  const theirs = {
    polyfill: await lib.AEAD.importKey(key, 'AES-SIV', providers.polyfill),
    webcrypto: await lib.AEAD.importKey(key, 'AES-SIV', providers.webcrypto),
  };
  // Same inputs, same answers, before anything is timed.
  for (const m of Object.values(theirs)) {
    if (!sameBytes(await m.seal(plaintext, nonce, header), sealed)) throw new Error('bench: miscreant and ours disagree on seal');
    if (!sameBytes(await m.open(sealed, nonce, header), plaintext)) throw new Error('bench: miscreant cannot open our output');
  }
  const opened = ours.open(nonce, sealed, header);
  if (opened === null || !sameBytes(opened, plaintext)) throw new Error('bench: open failed');

  const cmacKey = randomBytes(16);
  const packet = randomBytes(48);
  const cmac = new Cmac(cmacKey);
  const theirCmac = {
    polyfill: await lib.CMAC.importKey(providers.polyfill, cmacKey),
    webcrypto: await lib.CMAC.importKey(providers.webcrypto, cmacKey),
  };
  const theirMac = (c: MiscreantCmac) => async () => (await c.reset().update(packet)).finish();
  if (!sameBytes(await theirMac(theirCmac.polyfill)(), cmac.mac(packet))) throw new Error('bench: CMAC results differ');

  const cases: { name: string; ours: Op; polyfill: Op; webcrypto: Op }[] = [
    {
      name: 'AES-SIV-CMAC-256 seal (AD 48, nonce 16, P 104)',
      ours: () => ours.seal(nonce, plaintext, header),
      polyfill: () => theirs.polyfill.seal(plaintext, nonce, header),
      webcrypto: () => theirs.webcrypto.seal(plaintext, nonce, header),
    },
    {
      name: 'AES-SIV-CMAC-256 open (AD 48, nonce 16, C 120)',
      ours: () => ours.open(nonce, sealed, header),
      polyfill: () => theirs.polyfill.open(sealed, nonce, header),
      webcrypto: () => theirs.webcrypto.open(sealed, nonce, header),
    },
    {
      name: 'AES-128-CMAC (48-byte NTP packet)',
      ours: () => cmac.mac(packet),
      polyfill: theirMac(theirCmac.polyfill),
      webcrypto: theirMac(theirCmac.webcrypto),
    },
  ];

  // Ours first for every case: miscreant's promise-heavy loops leave garbage that would otherwise be
  // collected during our runs. The webcrypto provider, far the slowest, gets half the budget.
  const oursRates: number[] = [];
  for (const c of cases) oursRates.push(await measure(c.ours, ms));
  const rows: { case: string; ours: number; polyfill: number; webcrypto: number; ratio: number }[] = [];
  for (const [i, c] of cases.entries()) {
    const o = oursRates[i]!;
    const p = await measure(c.polyfill, ms);
    const w = await measure(c.webcrypto, ms / 2);
    rows.push({ case: c.name, ours: o, polyfill: p, webcrypto: w, ratio: o / Math.max(p, w) });
  }

  if (json) {
    console.log(JSON.stringify({ node: process.version, timeMs: ms, results: rows }, null, 2));
    return;
  }
  const head = ['case', 'ours ops/s', 'miscreant polyfill', 'miscreant webcrypto', 'ours / miscreant'];
  const body = rows.map((r) => [r.case, fmt(r.ours), fmt(r.polyfill), fmt(r.webcrypto), `${r.ratio.toFixed(1)}x`]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(`crypto bench, node ${process.version}, ${ms} ms per case (miscreant webcrypto: half), miscreant 0.3.2`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
  console.log('ratio: ours against the faster miscreant provider');
}
