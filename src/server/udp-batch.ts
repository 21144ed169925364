/**
 * Batched UDP sockets from the native module (native/udp_batch.c): one readable event drains up to `slots`
 * datagrams with recvmmsg(2), JS answers them in one call, and the answers leave with one sendmmsg(2).
 * Node's dgram spends a callback, a send system call and several allocations per datagram, most of a plain
 * NTP request's CPU.
 *
 * Datagrams and answers live in buffers allocated here and shared with the native side; a batch is valid
 * only during its `onBatch` call (the next one reuses the slots). Linux only: `nativeUdpBatch()` says why the
 * module is not there, and the NTP service then uses dgram.
 */
import { loadNativeModule } from './native.js';

interface NativeHandle {
  readonly port: number;
}

export interface NativeUdpModule {
  open(options: {
    family: 4 | 6;
    host: string;
    port: number;
    slots: number;
    slotSize: number;
    buffers: { rx: Uint8Array; tx: Uint8Array; meta: Int32Array; addressText: Uint8Array; stats: Int32Array };
    onBatch: (count: number) => void;
  }): NativeHandle;
  close(handle: NativeHandle, onClosed: () => void): void;
  readonly metaStride: number;
  readonly addressTextSize: number;
  readonly statWords: number;
}

// Word offsets in a slot's metadata (native/udp_batch.c, META_*).
const META_LENGTH = 0;
const META_FAMILY = 1;
const META_PORT = 2;
const META_ADDRESS_LENGTH = 3;
const META_AGE_NS = 4;
const META_REPLY_LENGTH = 5;
const STAT_SEND_ERRORS = 0;
const STAT_RECEIVE_ERRORS = 1;

let loaded: { module: NativeUdpModule } | { reason: string } | undefined;

/** The native module's batched UDP, or why it cannot be used here (not Linux, not built, or built for another Node). */
export function nativeUdpBatch(): { readonly module: NativeUdpModule } | { readonly reason: string } {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'linux') return (loaded = { reason: `batched UDP needs Linux (recvmmsg/sendmmsg), not ${process.platform}` });
  const native = loadNativeModule();
  if ('reason' in native) return (loaded = native);
  const module = native.binding as Partial<NativeUdpModule>;
  if (typeof module.open !== 'function' || typeof module.close !== 'function') loaded = { reason: 'the native module offers no batched UDP on this system' };
  else loaded = { module: module as NativeUdpModule };
  return loaded;
}

/** The datagrams of one wake-up, read in place. Index `i` runs from 0 to `count - 1`. */
export class UdpBatch {
  count = 0;
  readonly #rx: Uint8Array;
  readonly #tx: Uint8Array;
  readonly #meta: Int32Array;
  readonly #addressText: Buffer;
  readonly #slotSize: number;
  readonly #stride: number;
  readonly #addressSize: number;

  constructor(rx: Uint8Array, tx: Uint8Array, meta: Int32Array, addressText: Buffer, slotSize: number, stride: number, addressSize: number) {
    this.#rx = rx;
    this.#tx = tx;
    this.#meta = meta;
    this.#addressText = addressText;
    this.#slotSize = slotSize;
    this.#stride = stride;
    this.#addressSize = addressSize;
  }

  /** The datagram's length, or -1 when it was longer than a slot (and was truncated). */
  length(i: number): number {
    return this.#meta[i * this.#stride + META_LENGTH]!;
  }

  /** The datagram's bytes: a view into the slot, valid until `onBatch` returns. */
  datagram(i: number): Uint8Array {
    const start = i * this.#slotSize;
    return this.#rx.subarray(start, start + this.length(i));
  }

  /** The source address as text, as dgram gives it (inet_ntop). */
  address(i: number): string {
    const start = i * this.#addressSize;
    return this.#addressText.toString('latin1', start, start + this.#meta[i * this.#stride + META_ADDRESS_LENGTH]!);
  }

  family(i: number): 4 | 6 {
    return this.#meta[i * this.#stride + META_FAMILY] === 6 ? 6 : 4;
  }

  port(i: number): number {
    return this.#meta[i * this.#stride + META_PORT]!;
  }

  /** Nanoseconds from the kernel's receive timestamp to the start of this batch; -1 when there is none. */
  ageNanos(i: number): number {
    return this.#meta[i * this.#stride + META_AGE_NS]!;
  }

  /** Answers datagram `i` with `bytes` (to its source address), sent when `onBatch` returns. */
  reply(i: number, bytes: Uint8Array): boolean {
    if (bytes.length > this.#slotSize) return false;
    this.#tx.set(bytes, i * this.#slotSize);
    this.#meta[i * this.#stride + META_REPLY_LENGTH] = bytes.length;
    return true;
  }
}

export interface UdpBatchSocketOptions {
  readonly family: 4 | 6;
  /** A numeric address. */
  readonly host: string;
  readonly port: number;
  /** Datagrams per system call. */
  readonly slots?: number;
  /** The longest datagram taken whole; longer ones arrive with length -1. */
  readonly slotSize?: number;
  readonly onBatch: (batch: UdpBatch) => void;
}

/** A bound UDP socket that receives and answers in batches. Throws errors with `code` (EADDRINUSE, …) on bind. */
export class UdpBatchSocket {
  /** The bound address, as given. */
  readonly host: string;
  readonly port: number;
  readonly #module: NativeUdpModule;
  readonly #handle: NativeHandle;
  readonly #stats: Int32Array;
  #closed: Promise<void> | undefined;

  constructor(module: NativeUdpModule, options: UdpBatchSocketOptions) {
    const slots = options.slots ?? 64;
    const slotSize = options.slotSize ?? 4096;
    const rx = new Uint8Array(slots * slotSize);
    const tx = new Uint8Array(slots * slotSize);
    const meta = new Int32Array(slots * module.metaStride);
    const addressText = Buffer.alloc(slots * module.addressTextSize);
    this.#stats = new Int32Array(module.statWords);
    const batch = new UdpBatch(rx, tx, meta, addressText, slotSize, module.metaStride, module.addressTextSize);
    const onBatch = options.onBatch;
    this.#module = module;
    this.#handle = module.open({
      family: options.family,
      host: options.host,
      port: options.port,
      slots,
      slotSize,
      buffers: { rx, tx, meta, addressText, stats: this.#stats },
      onBatch: (count) => {
        batch.count = count;
        onBatch(batch);
      },
    });
    this.host = options.host;
    this.port = this.#handle.port;
  }

  /** Answers that could not be sent since the socket opened (a full send buffer, an unreachable source). */
  get sendErrors(): number {
    return this.#stats[STAT_SEND_ERRORS]! >>> 0;
  }

  /** Failed receive calls other than "nothing to read" since the socket opened. */
  get receiveErrors(): number {
    return this.#stats[STAT_RECEIVE_ERRORS]! >>> 0;
  }

  /** Stops receiving at once; resolves once the socket is closed. */
  close(): Promise<void> {
    this.#closed ??= new Promise((resolve) => this.#module.close(this.#handle, resolve));
    return this.#closed;
  }
}
