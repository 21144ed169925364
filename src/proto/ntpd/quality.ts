/**
 * ntpd's system variables (mode 6 READVAR on association 0, RFC 9327 §3.1) turned into the quality the NTP
 * service serves with `time.source = "ntpd"`. Pure: the variables and the current time come in as arguments.
 *
 * We mirror ntpd's own values (stratum, refid, leap, precision, root delay and dispersion, reference time):
 * ntptsd answers from the system clock ntpd disciplines, so it serves what ntpd would serve itself. An ntpd
 * that says it is not synchronised (leap 3, stratum 0 or 16) is served as unsynchronised at once.
 */
import { fail, ok, DecodeError, type Result } from '../errors.js';
import type { Mode6Variables } from '../mode6/variables.js';
import { variableInteger, variableNumber, variableTimestamp } from '../mode6/variables.js';
import { NTP_STRATUM_UNSYNCHRONIZED, refIdFromAscii, refIdFromIPv4, renderRefId } from '../ntp/packet.js';
import { unsynchronisedQuality } from '../ntp/quality.js';
import type { LeapIndicator, TimeQuality } from '../ntp/server.js';
import { isZeroNtpTimestamp, ntpTimestampToUnixMicros } from '../ntp/timestamp.js';

/** The system variables read each poll (ntpd sends only these when asked by name). */
export const NTPD_QUALITY_VARIABLES = ['leap', 'stratum', 'precision', 'rootdelay', 'rootdisp', 'refid', 'reftime'] as const;

export interface NtpdSystemQuality {
  readonly synchronised: boolean;
  readonly quality: TimeQuality;
  /** For logs and status: the refid as ntpd printed it. */
  readonly refidText: string;
}

const LEAPS: readonly LeapIndicator[] = ['none', 'add', 'delete', 'unsynchronized'];
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function problem(code: string, message: string): { readonly ok: false; readonly error: DecodeError } {
  return fail(new DecodeError(code, message));
}

/** `leap=00` (ntpd prints the two bits), `leap=3` or `leap=11`. */
function leapOf(text: string | null | undefined): LeapIndicator | undefined {
  if (text === null || text === undefined) return undefined;
  const v = text.trim();
  if (/^[01]{2}$/.test(v)) return LEAPS[parseInt(v, 2)];
  if (/^[0-3]$/.test(v)) return LEAPS[Number(v)];
  return undefined;
}

/** ntpd prints an IPv4 refid as an address, a stratum 0/1 or kiss refid as its characters (maybe in dots). */
function refidOf(text: string | null | undefined): { refid: number; text: string } | undefined {
  if (text === null || text === undefined) return undefined;
  const v = text.trim();
  if (IPV4.test(v)) {
    const octets = v.split('.').map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    return { refid: refIdFromIPv4(v), text: v };
  }
  const bare = v.replace(/^\.(.*)\.$/, '$1');
  if (bare.length === 0 || bare.length > 4 || !/^[\x20-\x7e]+$/.test(bare)) return undefined;
  return { refid: refIdFromAscii(bare), text: bare };
}

/**
 * The quality to serve from ntpd's system variables; an error names the first variable that is missing or
 * unreadable. `fallbackPrecision` is used when ntpd does not send `precision`.
 */
export function ntpdSystemQuality(variables: Mode6Variables, nowMicros: number, fallbackPrecision: number): Result<NtpdSystemQuality> {
  const leap = leapOf(variables.get('leap'));
  if (leap === undefined) return problem('NTPD_BAD_LEAP', `leap: ${JSON.stringify(variables.get('leap') ?? 'missing')} is not a leap indicator`);
  const stratum = variableInteger(variables.get('stratum'));
  if (stratum === undefined || stratum < 0 || stratum > 255) return problem('NTPD_BAD_STRATUM', `stratum: ${JSON.stringify(variables.get('stratum') ?? 'missing')} is not a stratum`);
  const precision = variableInteger(variables.get('precision')) ?? fallbackPrecision;
  if (precision < -128 || precision > 127) return problem('NTPD_BAD_PRECISION', `precision: ${precision} is out of range`);
  const unsynchronised = leap === 'unsynchronized' || stratum === 0 || stratum >= NTP_STRATUM_UNSYNCHRONIZED;
  if (unsynchronised) return ok({ synchronised: false, quality: unsynchronisedQuality(precision), refidText: 'INIT' });

  const rootDelayMs = variableNumber(variables.get('rootdelay'));
  if (rootDelayMs === undefined || rootDelayMs < 0) return problem('NTPD_BAD_ROOT_DELAY', `rootdelay: ${JSON.stringify(variables.get('rootdelay') ?? 'missing')} is not a delay in ms`);
  const rootDispMs = variableNumber(variables.get('rootdisp'));
  if (rootDispMs === undefined || rootDispMs < 0) return problem('NTPD_BAD_ROOT_DISPERSION', `rootdisp: ${JSON.stringify(variables.get('rootdisp') ?? 'missing')} is not a dispersion in ms`);
  const refid = refidOf(variables.get('refid'));
  if (refid === undefined) return problem('NTPD_BAD_REFID', `refid: ${JSON.stringify(variables.get('refid') ?? 'missing')} is not a reference id`);
  const reftime = variableTimestamp(variables.get('reftime'));
  if (reftime === undefined) return problem('NTPD_BAD_REFTIME', `reftime: ${JSON.stringify(variables.get('reftime') ?? 'missing')} is not an NTP timestamp`);
  const referenceTimeMicros = isZeroNtpTimestamp(reftime) ? 0 : (ntpTimestampToUnixMicros(reftime, nowMicros) ?? 0);
  // The NTP short format tops out just below 65536 s; ntpd never reports more, but garbage must not throw later.
  const cap = (ms: number) => Math.min(Math.round(ms * 1000), 65535 * 1_000_000);
  return ok({
    synchronised: true,
    quality: {
      leap,
      stratum,
      refid: refid.refid,
      precision,
      rootDelayMicros: cap(rootDelayMs),
      rootDispersionMicros: cap(rootDispMs),
      referenceTimeMicros,
    },
    refidText: renderRefId(refid.refid, stratum),
  });
}
