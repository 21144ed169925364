/**
 * Status words of control messages (RFC 9327 §3) and the READSTAT answer.
 *
 *   System status (§3.1):  LI(2) | Clock Source(6) | Event Count(4) | Event Code(4)
 *   Peer status (§3.2):    Status(5: config, authenable, authentic, reach, broadcast) | Selection(3) |
 *                          Event Count(4) | Event Code(4)
 *   READSTAT with association 0 (§4): the data is a list of (association id u16, peer status u16) pairs.
 *
 * Names follow what ntpq prints (leap_none, sync_ntp, sys.peer, reachable, …). Codes without a name decode to
 * `unknown_<n>`; the numbers are always kept.
 */

import { decodeError, ok, UsageError, type Result } from '../errors.js';
import { readU16 } from '../ntp/bytes.js';

const LEAP_NAMES = ['leap_none', 'leap_add_sec', 'leap_del_sec', 'leap_alarm'] as const;

/** RFC 9327 §3.1 clock sources (NTPsec's CTL_SST_TS_*). */
const CLOCK_SOURCE_NAMES: readonly string[] = [
  'sync_unspec',
  'sync_pps',
  'sync_lf_radio',
  'sync_hf_radio',
  'sync_uhf_radio',
  'sync_local',
  'sync_ntp',
  'sync_other',
  'sync_wristwatch',
  'sync_telephone',
];

/** RFC 9327 §3.1 system event codes. */
const SYSTEM_EVENT_NAMES: readonly string[] = [
  'unspecified',
  'freq_not_set',
  'freq_set',
  'spike_detect',
  'freq_mode',
  'clock_sync',
  'restart',
  'panic_stop',
  'no_sys_peer',
  'leap_armed',
  'leap_disarmed',
  'leap_event',
  'clock_step',
  'kern',
  'TAI',
  'stale_leapsecond_values',
];

/** RFC 9327 §3.2 peer event codes. */
const PEER_EVENT_NAMES: readonly string[] = [
  'unspecified',
  'mobilize',
  'demobilize',
  'unreachable',
  'reachable',
  'restart',
  'no_reply',
  'rate_exceeded',
  'access_denied',
  'leap_armed',
  'sys_peer',
  'clock_event',
  'bad_auth',
  'popcorn',
  'interleave_mode',
  'interleave_error',
];

/** RFC 9327 §3.2 peer selection codes, with ntpq's names. */
export const PEER_SELECTION_NAMES: readonly string[] = ['reject', 'falsetick', 'excess', 'outlier', 'candidate', 'backup', 'sys.peer', 'pps.peer'];

/** ntpq's tally characters, indexed by selection code (for versions above 1). */
export const PEER_TALLY = ' x.-+#*o';

/** RFC 9327 §3.2 peer status bits (high octet of the peer status word). */
export const PeerStatusBits = {
  Configured: 0x80,
  AuthEnabled: 0x40,
  Authentic: 0x20,
  Reachable: 0x10,
  Broadcast: 0x08,
} as const;

export interface SystemStatus {
  readonly word: number;
  /** 0..3 (RFC 5905 leap indicator). */
  readonly leap: number;
  readonly leapName: string;
  readonly clockSource: number;
  readonly clockSourceName: string;
  readonly eventCount: number;
  readonly eventCode: number;
  readonly eventName: string;
}

export interface PeerStatus {
  readonly word: number;
  readonly configured: boolean;
  readonly authEnabled: boolean;
  readonly authentic: boolean;
  readonly reachable: boolean;
  readonly broadcast: boolean;
  /** 0..7. */
  readonly selection: number;
  readonly selectionName: string;
  /** ntpq's tally character for the selection. */
  readonly tally: string;
  readonly eventCount: number;
  readonly eventCode: number;
  readonly eventName: string;
}

export interface AssociationStatus {
  readonly associationId: number;
  readonly status: PeerStatus;
}

function checkWord(word: number): void {
  if (!Number.isInteger(word) || word < 0 || word > 0xffff) throw new UsageError('MODE6_STATUS_RANGE', `status word ${word} is outside 0..0xffff`);
}

const nameOf = (names: readonly string[], code: number): string => names[code] ?? `unknown_${code}`;

export function decodeSystemStatus(word: number): SystemStatus {
  checkWord(word);
  const leap = word >>> 14;
  const clockSource = (word >>> 8) & 0x3f;
  const eventCode = word & 0xf;
  return {
    word,
    leap,
    leapName: LEAP_NAMES[leap] as string,
    clockSource,
    clockSourceName: nameOf(CLOCK_SOURCE_NAMES, clockSource),
    eventCount: (word >>> 4) & 0xf,
    eventCode,
    eventName: nameOf(SYSTEM_EVENT_NAMES, eventCode),
  };
}

export function decodePeerStatus(word: number): PeerStatus {
  checkWord(word);
  const bits = word >>> 8;
  const selection = bits & 7;
  const eventCode = word & 0xf;
  return {
    word,
    configured: (bits & PeerStatusBits.Configured) !== 0,
    authEnabled: (bits & PeerStatusBits.AuthEnabled) !== 0,
    authentic: (bits & PeerStatusBits.Authentic) !== 0,
    reachable: (bits & PeerStatusBits.Reachable) !== 0,
    broadcast: (bits & PeerStatusBits.Broadcast) !== 0,
    selection,
    selectionName: PEER_SELECTION_NAMES[selection] as string,
    tally: PEER_TALLY[selection] as string,
    eventCount: (word >>> 4) & 0xf,
    eventCode,
    eventName: nameOf(PEER_EVENT_NAMES, eventCode),
  };
}

/** Most associations accepted in one READSTAT answer (ntpd's data limit is far above any real count). */
export const MODE6_MAX_ASSOCIATIONS = 16384;

/** Decodes READSTAT data: (association id, peer status) pairs (RFC 9327 §4). Total: never throws. */
export function decodeReadStatusData(data: Uint8Array): Result<AssociationStatus[]> {
  if (data.length % 4 !== 0) return decodeError('MODE6_READSTAT_BAD_LENGTH', `${data.length} octets is not a whole number of (id, status) pairs`, data.length);
  if (data.length / 4 > MODE6_MAX_ASSOCIATIONS) return decodeError('MODE6_READSTAT_TOO_MANY', `more than ${MODE6_MAX_ASSOCIATIONS} associations`, 0);
  const out: AssociationStatus[] = [];
  for (let at = 0; at < data.length; at += 4) {
    const associationId = readU16(data, at);
    if (associationId === 0) return decodeError('MODE6_READSTAT_ZERO_ID', 'association id 0 in the list (0 means "the system")', at);
    out.push({ associationId, status: decodePeerStatus(readU16(data, at + 2)) });
  }
  return ok(out);
}
