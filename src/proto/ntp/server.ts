/**
 * The NTP time service's decisions (RFC 5905 client/server mode, RFC 8915 §5 NTS), as values.
 *
 * `NtpResponder.handle(address, bytes, receivedAt, transmitAt)` returns what to send, or why not:
 *   { kind: 'respond', bytes, auth, kiss?, mac? } | { kind: 'drop', reason }
 * The shell takes the receive timestamp first, checks allow/deny lists, reads the clock again for the
 * transmit timestamp, calls `handle`, sends, and counts every outcome by `auth`/`kiss`/`reason`/`mac.outcome`.
 *
 * Invariants:
 * - Only client-mode (3) requests are answered; everything else is dropped with a reason.
 * - Rate limiting (the client table) runs after the cheap header checks and before any cryptography.
 * - An NTS response is never longer than its request (RFC 8915 §5.7: no amplification); cookies are
 *   left out, never truncated, when they would not fit.
 * - A cookie that cannot be opened gets an NTS NAK (kiss code NTSN, RFC 8915 §5.7); a request whose
 *   authenticator does not verify gets nothing (answering would let anyone probe with forged packets).
 * - A symmetric-key MAC (RFC 5905 §7.3; AES-128-CMAC per RFC 8573) covers the request up to the key id and
 *   is checked under the key the context's `macKeys` resolves (static or ephemeral, docs/eks.md §7). Verified:
 *   the response is header ‖ key id ‖ digest of that header under the same key, so it is exactly as long as
 *   a request without extension fields and never longer than any request. Anything else (no resolver,
 *   unknown or revoked key, a MAC that does not verify or only under an expired generation) gets a
 *   crypto-NAK (RFC 5905 §7.4: header ‖ key id 0), unauthenticated, with the outcome in `mac`. A crypto-NAK
 *   received from a client is answered with a crypto-NAK, without an outcome (there is no key to judge).
 * - NTS and a MAC are never combined (docs/eks.md §7): a well-formed NTS request followed by a legacy MAC
 *   (which NTS decoding cannot read) is dropped (`nts_and_mac`), neither authenticated nor answered in plain NTP.
 * - The plain and NTS paths do no MAC work; the MAC path and the NTS-and-MAC check run only for requests
 *   that carry a MAC or fail NTS decoding.
 */

import type { Aead } from '../../crypto/aead.js';
import { createAead } from '../../crypto/aead.js';
import type { KeyRing, RandomBytes } from '../../crypto/keyring.js';
import { Slab } from '../../crypto/slab.js';
import type { ClientTable } from './client-table.js';
import type { PreparedMac } from '../../crypto/symmetric-mac.js';
import { writeU16, writeU32 } from './bytes.js';
import type { MacKeyOutcome, MacKeyResolution, MacKeyResolver } from './mac-keys.js';
import { COOKIE_NONCE_LENGTH, cookieLength, openCookie, sealCookieInto } from '../nts/cookie.js';
import { CRYPTO_NAK_LENGTH, EF_HEADER_LENGTH, MAC_MAX_LENGTH, type ExtensionField, writeExtensionField } from './extensions.js';
import { NTP_HEADER_LENGTH, NtpMode, type NtpHeader, decodeNtpPacket, encodeKissCode, writeNtpHeader } from './packet.js';
import { NTP_TIMESTAMP_ZERO, microsToNtpShort, unixMicrosToNtpTimestamp } from './timestamp.js';
import { NTS_NONCE_LENGTH, NtsFieldType, decodeNtsView, ntsAuthenticatorLayout, writeNtsAuthenticatorFrame } from '../nts/extension-fields.js';

export type LeapIndicator = 'none' | 'add' | 'delete' | 'unsynchronized';

/** What the time source says about the time we serve; copied into every response header (RFC 5905 §7.3). */
export interface TimeQuality {
  leap: LeapIndicator;
  /** 1..15 when synchronised; 16 means unsynchronised. */
  stratum: number;
  /** The reference id as a big-endian u32. */
  refid: number;
  /** log2 seconds. */
  precision: number;
  rootDelayMicros: number;
  rootDispersionMicros: number;
  /** When the source was last updated, Unix microseconds; 0 for unknown. */
  referenceTimeMicros: number;
}

export type NtpAuthKind = 'none' | 'nts';

export type NtpDropReason =
  | 'malformed'
  | 'bad_mode'
  | 'rate_limited'
  | 'nts_malformed'
  | 'nts_bad_cookie_aead'
  | 'nts_auth_failed'
  /** NTS extension fields and a legacy MAC in one request (docs/eks.md §7). */
  | 'nts_and_mac';

/** What became of a request's MAC, with the key id it named (for counters and logs; docs/eks.md §7). */
export interface NtpMacResult {
  readonly outcome: MacKeyOutcome;
  readonly keyId: number;
}

export type NtpDecision =
  | {
      readonly kind: 'respond';
      readonly bytes: Uint8Array;
      readonly auth: NtpAuthKind | 'mac';
      readonly kiss?: 'RATE' | 'NTSN' | 'CRYPTO_NAK';
      /** Present when the request carried a MAC (not a crypto-NAK): verified, or why not. */
      readonly mac?: NtpMacResult;
    }
  | { readonly kind: 'drop'; readonly reason: NtpDropReason; readonly detail?: string };

export interface NtpResponderContext {
  readonly clients: ClientTable;
  readonly keyRing: () => KeyRing;
  readonly quality: (nowMicros: number) => TimeQuality;
  readonly random: RandomBytes;
  /** The keys request MACs are verified under (RFC 5905 §7.3); without it every MAC gets a crypto-NAK. */
  readonly macKeys?: MacKeyResolver;
}

const LEAP_BITS: Record<LeapIndicator, number> = { none: 0, add: 1, delete: 2, unsynchronized: 3 };
const KISS_RATE = encodeKissCode('RATE');
const KISS_NTSN = encodeKissCode('NTSN');
const NTS_FIELD_TYPES = new Set<number>([NtsFieldType.UniqueIdentifier, NtsFieldType.Cookie, NtsFieldType.CookiePlaceholder, NtsFieldType.Authenticator]);
const NTS_DECODE_OPTIONS = { allowShortFields: true, legacyMac: false } as const;
/** The same NTS packet read with the legacy MAC rule (RFC 7822 §3), to tell NTS-with-a-MAC from garbage. */
const NTS_WITH_MAC_DECODE_OPTIONS = { allowShortFields: true, legacyMac: true } as const;
const NO_MAC_KEYS: MacKeyResolution = Object.freeze({ kind: 'refused', reason: 'unknown_key' });

/** NTS responses are carved from a slab: a fresh Uint8Array of their size costs about a microsecond. */
const responses = new Slab();
/** The plaintext of an NTS response (its new cookies), rebuilt per request: sealing copies it. */
let cookieScratch = new Uint8Array(1024);

export class NtpResponder {
  constructor(private readonly context: NtpResponderContext) {}

  handle(address: string, request: Uint8Array, receivedAtMicros: number, transmitAtMicros: number): NtpDecision {
    if (request.length < NTP_HEADER_LENGTH) return { kind: 'drop', reason: 'malformed', detail: 'NTP_TOO_SHORT' };
    const mode = (request[0] as number) & 7;
    const version = ((request[0] as number) >> 3) & 7;
    if (version < 1 || version > 4) return { kind: 'drop', reason: 'malformed', detail: 'NTP_BAD_VERSION' };
    if (mode !== NtpMode.Client) return { kind: 'drop', reason: 'bad_mode', detail: `mode ${mode}` };

    // NTS packets may use short fields and carry no MAC (RFC 8915 §5.6); look for NTS types first.
    const nts = version === 4 && looksLikeNts(request);
    const decoded = decodeNtpPacket(request, nts ? NTS_DECODE_OPTIONS : undefined);
    if (!decoded.ok) {
      // NTS decoding reads a trailing MAC as a broken field; a second look only on this failure path.
      if (nts && endsWithMac(request)) return { kind: 'drop', reason: 'nts_and_mac' };
      return { kind: 'drop', reason: 'malformed', detail: decoded.error.code };
    }
    const packet = decoded.value;

    const { decision, entry } = this.context.clients.admit(address, receivedAtMicros);
    entry.lastMode = mode;
    entry.lastVersion = version;
    entry.lastAuth = nts ? 'nts' : packet.mac?.kind === 'mac' ? 'mac' : 'none';
    if (decision === 'drop' || (decision === 'kod' && nts)) return { kind: 'drop', reason: 'rate_limited' };
    const quality = this.context.quality(receivedAtMicros);
    if (decision === 'kod') {
      return { kind: 'respond', bytes: this.kissOfDeath(packet.header, KISS_RATE, receivedAtMicros, transmitAtMicros), auth: 'none', kiss: 'RATE' };
    }

    if (nts) return this.handleNts(request, packet.header, packet.extensions, quality, receivedAtMicros, transmitAtMicros);
    if (packet.mac !== null) {
      if (packet.mac.kind === 'mac') {
        return this.handleMac(request.subarray(0, packet.macOffset), packet.header, packet.mac.keyId, packet.mac.digest, quality, receivedAtMicros, transmitAtMicros);
      }
      // A client's crypto-NAK names no key: answered with a crypto-NAK, as before MACs were verified.
      return { kind: 'respond', bytes: this.cryptoNak(packet.header, quality, receivedAtMicros, transmitAtMicros), auth: 'none', kiss: 'CRYPTO_NAK' };
    }
    const out = new Uint8Array(NTP_HEADER_LENGTH);
    writeNtpHeader(this.responseHeader(packet.header, quality, receivedAtMicros, transmitAtMicros), out, 0);
    return { kind: 'respond', bytes: out, auth: 'none' };
  }

  /**
   * RFC 5905 §7.3 / RFC 8573: `covered` is the request up to the key id. The key that verifies signs the
   * response: a static key, or the ephemeral key the verifier found (live generations only; a MAC that
   * verifies only under an expired one is reported as such, docs/eks.md §4). Every other outcome is a crypto-NAK.
   */
  private handleMac(
    covered: Uint8Array,
    header: NtpHeader,
    keyId: number,
    digest: Uint8Array,
    quality: TimeQuality,
    receivedAtMicros: number,
    transmitAtMicros: number,
  ): NtpDecision {
    const resolved = this.context.macKeys?.resolve(keyId, receivedAtMicros) ?? NO_MAC_KEYS;
    let key: PreparedMac | undefined;
    let outcome: MacKeyOutcome;
    if (resolved.kind === 'refused') {
      outcome = resolved.reason;
    } else if (resolved.kind === 'static') {
      if (resolved.key.verify(covered, digest)) key = resolved.key;
      outcome = key === undefined ? 'bad_mac' : 'verified_static';
    } else {
      // The verifier derives candidate keys lazily (docs/eks.md §4): live generations until one verifies,
      // expired ones only to tell `expired` from `bad_mac`.
      const check = resolved.verifier.verify(keyId, covered, digest, receivedAtMicros);
      if (check.outcome === 'verified') {
        key = check.mac;
        outcome = 'verified_ephemeral';
      } else outcome = check.outcome === 'not_ephemeral' ? 'unknown_key' : check.outcome;
    }
    if (key === undefined) {
      return { kind: 'respond', bytes: this.cryptoNak(header, quality, receivedAtMicros, transmitAtMicros), auth: 'none', kiss: 'CRYPTO_NAK', mac: { outcome, keyId } };
    }
    // RFC 5905 §7.3: the response MAC covers the response header, under the key the client used.
    const out = new Uint8Array(NTP_HEADER_LENGTH + 4 + key.digestLength);
    writeNtpHeader(this.responseHeader(header, quality, receivedAtMicros, transmitAtMicros), out, 0);
    writeU32(out, NTP_HEADER_LENGTH, keyId);
    out.set(key.compute(out.subarray(0, NTP_HEADER_LENGTH)), NTP_HEADER_LENGTH + 4);
    return { kind: 'respond', bytes: out, auth: 'mac', mac: { outcome, keyId } };
  }

  /** RFC 5905 §7.4: the response header and a MAC field holding only key id 0, unauthenticated. */
  private cryptoNak(header: NtpHeader, quality: TimeQuality, receivedAtMicros: number, transmitAtMicros: number): Uint8Array {
    const out = new Uint8Array(NTP_HEADER_LENGTH + CRYPTO_NAK_LENGTH);
    writeNtpHeader(this.responseHeader(header, quality, receivedAtMicros, transmitAtMicros), out, 0);
    return out;
  }

  private handleNts(
    request: Uint8Array,
    header: NtpHeader,
    fields: readonly ExtensionField[],
    quality: TimeQuality,
    receivedAtMicros: number,
    transmitAtMicros: number,
  ): NtpDecision {
    const view = decodeNtsView({ extensions: fields }, { role: 'request' });
    if (!view.ok) return { kind: 'drop', reason: 'nts_malformed', detail: view.error.code };
    const { uniqueIdentifier, cookies, placeholderLengths, authenticator, associatedDataEnd } = view.value;
    const ring = this.context.keyRing();
    const opened = openCookie(ring, cookies[0] as Uint8Array);
    if (!opened.ok) {
      return { kind: 'respond', bytes: this.ntsNak(header, uniqueIdentifier, receivedAtMicros, transmitAtMicros), auth: 'none', kiss: 'NTSN' };
    }
    let c2s: Aead;
    let s2c: Aead;
    try {
      c2s = createAead(opened.keys.aead, opened.keys.c2s);
      s2c = createAead(opened.keys.aead, opened.keys.s2c);
    } catch {
      return { kind: 'drop', reason: 'nts_bad_cookie_aead' };
    }
    // RFC 8915 §5.6: associated data is everything before the authenticator field.
    const opaque = c2s.open(authenticator.nonce, authenticator.ciphertext, request.subarray(0, associatedDataEnd));
    if (opaque === null) return { kind: 'drop', reason: 'nts_auth_failed' };

    // One fresh cookie per cookie and placeholder received (RFC 8915 §5.7), as many as fit in the request's size.
    const cookieKeys = opened.keys;
    const cookieField = EF_HEADER_LENGTH + cookieLength(cookieKeys.aead);
    const uidFieldLength = EF_HEADER_LENGTH + uniqueIdentifier.length;
    const tagLength = s2c.algorithm.tagLength;
    let count = 1 + placeholderLengths.length;
    let layout = ntsAuthenticatorLayout(NTS_NONCE_LENGTH, tagLength + count * cookieField);
    while (count > 0 && NTP_HEADER_LENGTH + uidFieldLength + layout.fieldLength > request.length) {
      count--;
      layout = ntsAuthenticatorLayout(NTS_NONCE_LENGTH, tagLength + count * cookieField);
    }

    const plaintextLength = count * cookieField;
    if (cookieScratch.length < plaintextLength) cookieScratch = new Uint8Array(plaintextLength);
    const plaintext = cookieScratch.subarray(0, plaintextLength);
    for (let at = 0; at < plaintextLength; ) {
      writeU16(plaintext, at, NtsFieldType.Cookie);
      writeU16(plaintext, at + 2, cookieField);
      at = sealCookieInto(ring, cookieKeys, this.context.random(COOKIE_NONCE_LENGTH), plaintext, at + EF_HEADER_LENGTH);
    }

    // The authenticator is sealed in place: associated data = the response up to the field (RFC 8915 §5.6).
    const out = responses.alloc(NTP_HEADER_LENGTH + uidFieldLength + layout.fieldLength);
    let offset = writeNtpHeader(this.responseHeader(header, quality, receivedAtMicros, transmitAtMicros), out, 0);
    offset = writeExtensionField(NtsFieldType.UniqueIdentifier, uniqueIdentifier, out, offset, EF_HEADER_LENGTH);
    const authStart = offset;
    const nonce = this.context.random(NTS_NONCE_LENGTH);
    writeNtsAuthenticatorFrame(out, authStart, NTS_NONCE_LENGTH, tagLength + plaintextLength);
    out.set(nonce, authStart + layout.nonceOffset);
    s2c.sealInto(nonce, plaintext, out.subarray(0, authStart), out, authStart + layout.ciphertextOffset);
    return { kind: 'respond', bytes: out, auth: 'nts' };
  }

  private responseHeader(request: NtpHeader, quality: TimeQuality, receivedAtMicros: number, transmitAtMicros: number): NtpHeader {
    const unsynchronized = quality.leap === 'unsynchronized' || quality.stratum >= 16;
    return {
      leap: unsynchronized ? 3 : LEAP_BITS[quality.leap],
      version: request.version,
      mode: NtpMode.Server,
      stratum: unsynchronized ? 16 : quality.stratum,
      poll: request.poll,
      precision: quality.precision,
      rootDelay: microsToNtpShort(quality.rootDelayMicros),
      rootDispersion: microsToNtpShort(quality.rootDispersionMicros),
      referenceId: quality.refid,
      referenceTimestamp: quality.referenceTimeMicros === 0 ? NTP_TIMESTAMP_ZERO : unixMicrosToNtpTimestamp(quality.referenceTimeMicros),
      // RFC 5905 §8: the client's transmit timestamp becomes our origin timestamp.
      originTimestamp: request.transmitTimestamp,
      receiveTimestamp: unixMicrosToNtpTimestamp(receivedAtMicros),
      transmitTimestamp: unixMicrosToNtpTimestamp(transmitAtMicros),
    };
  }

  /** RFC 5905 §7.4: stratum 0, leap 3, the kiss code as reference id. */
  private kissHeader(request: NtpHeader, kiss: number, receivedAtMicros: number, transmitAtMicros: number): NtpHeader {
    return {
      leap: 3,
      version: request.version,
      mode: NtpMode.Server,
      stratum: 0,
      poll: request.poll,
      precision: 0,
      rootDelay: 0,
      rootDispersion: 0,
      referenceId: kiss,
      referenceTimestamp: NTP_TIMESTAMP_ZERO,
      originTimestamp: request.transmitTimestamp,
      receiveTimestamp: unixMicrosToNtpTimestamp(receivedAtMicros),
      transmitTimestamp: unixMicrosToNtpTimestamp(transmitAtMicros),
    };
  }

  private kissOfDeath(header: NtpHeader, kiss: number, receivedAtMicros: number, transmitAtMicros: number): Uint8Array {
    const out = new Uint8Array(NTP_HEADER_LENGTH);
    writeNtpHeader(this.kissHeader(header, kiss, receivedAtMicros, transmitAtMicros), out, 0);
    return out;
  }

  /** RFC 8915 §5.7: an NTS NAK echoes the Unique Identifier, carries no authenticator and no cookies. */
  private ntsNak(header: NtpHeader, uniqueIdentifier: Uint8Array, receivedAtMicros: number, transmitAtMicros: number): Uint8Array {
    const out = new Uint8Array(NTP_HEADER_LENGTH + EF_HEADER_LENGTH + uniqueIdentifier.length);
    const offset = writeNtpHeader(this.kissHeader(header, KISS_NTSN, receivedAtMicros, transmitAtMicros), out, 0);
    writeExtensionField(NtsFieldType.UniqueIdentifier, uniqueIdentifier, out, offset, EF_HEADER_LENGTH);
    return out;
  }
}

/**
 * True when the request is a well-formed NTS request (RFC 8915 §5.7) followed by a MAC under the legacy
 * rule (RFC 7822 §3): called only for an NTS-looking request that failed NTS decoding, to report NTS + MAC
 * (docs/eks.md §7) rather than a malformed packet. Requiring the NTS fields to make sense keeps a truncated
 * NTS request, whose last 20 or 24 octets would also read as a MAC, counted as malformed.
 */
function endsWithMac(request: Uint8Array): boolean {
  const decoded = decodeNtpPacket(request, NTS_WITH_MAC_DECODE_OPTIONS);
  return decoded.ok && decoded.value.mac?.kind === 'mac' && decodeNtsView({ extensions: decoded.value.extensions }, { role: 'request' }).ok;
}

/**
 * True when an extension field with an NTS type (RFC 8915 §5.3-5.6) follows the header, at any position:
 * RFC 8915 fixes no field order, and looking only at the first field answered an NTS request that starts
 * with another field in plain, unauthenticated NTP. The walk follows the field lengths and stops where a
 * legacy MAC may start (24 octets or fewer left, RFC 7822 §3), so a MAC whose key id happens to read as an
 * NTS type is not mistaken for a field. Every step advances at least 4 octets: O(length), never throws.
 */
function looksLikeNts(request: Uint8Array): boolean {
  let pos = NTP_HEADER_LENGTH;
  while (request.length - pos > MAC_MAX_LENGTH) {
    const type = ((request[pos] as number) << 8) | (request[pos + 1] as number);
    if (NTS_FIELD_TYPES.has(type)) return true;
    const length = ((request[pos + 2] as number) << 8) | (request[pos + 3] as number);
    if (length < EF_HEADER_LENGTH || length % 4 !== 0) return false;
    pos += length;
  }
  return false;
}
