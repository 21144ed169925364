/**
 * Code points, limits and constants of the ephemeral key service (docs/eks.md). Records are framed exactly like
 * NTS-KE records (RFC 8915 §4) by `../ntske/framing.ts`; this module only names the EKS types and values.
 */

import { UsageError } from '../errors.js';

/** docs/eks.md §2, record table. Types 0-3 mean what they mean in NTS-KE (RFC 8915 §4.1.1-§4.1.4). */
export const EksRecordType = {
  /** Empty body, critical; last, once, in every message. */
  END_OF_MESSAGE: 0,
  /** List of u16 MAC algorithm ids, critical: ≥ 1 in a request, exactly 1 in a response. */
  MAC_ALGORITHM: 1,
  /** u16 error code, critical; response only, alone with End of Message. */
  ERROR: 2,
  /** u16 warning code, critical; response only (none assigned). */
  WARNING: 3,
  /** 1..256 octets of UTF-8, critical; request only, at most once. */
  TOKEN: 4,
  /** u32 key id ‖ 16-octet proof (§5), critical; request only, at most once. */
  RENEW: 5,
  /** u32, critical; response only, once. */
  KEY_ID: 6,
  /** The key (16 octets for AES-128-CMAC), critical; response only, once. */
  KEY: 7,
  /** u64 Unix time in seconds, critical; response only, once. */
  EXPIRY: 8,
  /** u32 seconds from now to the expiry, critical; response only, once. */
  LIFETIME: 9,
  /** ASCII host name or address, not critical; response only, optional. */
  NTP_SERVER: 10,
  /** u16, not critical; response only, when not 123. */
  NTP_PORT: 11,
} as const;

/** docs/eks.md §2: the only assigned id. MD5 and SHA-1 are never issued. */
export const EksMacAlgorithm = {
  /** RFC 8573: AES-128-CMAC, 16-octet key, 16-octet MAC. */
  AES128CMAC: 1,
} as const;

/** RFC 8573 §4: AES-128-CMAC takes a 128-bit key. */
export const EKS_AES128CMAC_KEY_LENGTH = 16;

/** docs/eks.md §2, error code table. 0-2 mean what they mean in NTS-KE (RFC 8915 §4.1.3). */
export const EksErrorCode = {
  UNRECOGNIZED_CRITICAL_RECORD: 0,
  BAD_REQUEST: 1,
  INTERNAL_ERROR: 2,
  UNAUTHORIZED: 3,
  TRY_LATER: 4,
  NO_COMMON_ALGORITHM: 5,
  RENEWAL_REFUSED: 6,
} as const;

const ERROR_NAMES: readonly string[] = [
  'Unrecognized Critical Record',
  'Bad Request',
  'Internal Error',
  'Unauthorized',
  'Try Later',
  'No Common Algorithm',
  'Renewal Refused',
];

/** The docs/eks.md §2 name of an error code, for messages; `unknown error N` for an unassigned one. */
export function eksErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `unknown error ${code}`;
}

/** docs/eks.md §1 limits: body, whole message (headers included) and records per message (End included). */
export const EKS_MAX_BODY_LENGTH = 1024;
export const EKS_MAX_MESSAGE_LENGTH = 4096;
export const EKS_MAX_RECORDS = 32;
/** docs/eks.md §2: a Token body is 1..256 octets. */
export const EKS_TOKEN_MAX_LENGTH = 256;
/** docs/eks.md §5: the proof is an AES-128-CMAC, 16 octets. */
export const EKS_RENEW_PROOF_LENGTH = 16;
/** docs/eks.md §5: octets taken from the TLS exporter for the proof. */
export const EKS_RENEW_EXPORTER_LENGTH = 16;
/** docs/eks.md §1. */
export const EKS_ALPN = 'ntp-eks/1';
/** docs/eks.md §5. */
export const EKS_RENEW_EXPORTER_LABEL = 'EXPORTER-ntptsd-eks-renew';
/** docs/eks.md §2: the NTP Port record is only sent for another port. */
export const EKS_NTP_DEFAULT_PORT = 123;

/** True for an integer in 0..0xffffffff. */
export function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

/** True for an integer in 0..0xffff. */
export function isU16(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

/** docs/eks.md §5: the exporter context binds the proof to the key id it is for (u32, big-endian). */
export function renewExporterContext(keyId: number): Uint8Array {
  if (!isU32(keyId)) throw new UsageError('EKS_VALUE_RANGE', `key id ${keyId} is not a u32`);
  return Uint8Array.of(keyId >>> 24, (keyId >>> 16) & 0xff, (keyId >>> 8) & 0xff, keyId & 0xff);
}
