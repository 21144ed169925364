/**
 * Record framing of NTS-KE (RFC 8915 §4, record format figure), generic over record types so that the ephemeral key
 * service (ALPN ntp-eks/1) reuses it with its own record registry:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |C|         Record Type         |          Body Length          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   .                        Record Body (Body Length octets)       .
 *
 * This layer knows nothing about what a type means; typing of bodies is done by `records.ts`.
 */

import { UsageError } from '../errors.js';

/** RFC 8915 §4: C bit (1) + Record Type (15) + Body Length (16). */
export const RECORD_HEADER_LENGTH = 4;
/** RFC 8915 §4: the top bit of the first 16-bit word is the Critical Bit. */
export const CRITICAL_BIT = 0x8000;
/** RFC 8915 §4: the record type is the low 15 bits. */
export const MAX_RECORD_TYPE = 0x7fff;
/** RFC 8915 §4: Body Length is a u16. */
export const MAX_BODY_LENGTH = 0xffff;

/** One record as framed on the wire. Unknown types are carried in this form and re-encode byte for byte. */
export interface RawRecord {
  readonly type: number;
  readonly critical: boolean;
  readonly body: Uint8Array;
}

function checkRaw(record: RawRecord): void {
  if (!Number.isInteger(record.type) || record.type < 0 || record.type > MAX_RECORD_TYPE) {
    throw new UsageError('RECORD_TYPE_RANGE', `record type ${record.type} is not a 15-bit unsigned integer`);
  }
  if (record.body.length > MAX_BODY_LENGTH) {
    throw new UsageError('RECORD_BODY_TOO_LONG', `record body of ${record.body.length} bytes exceeds ${MAX_BODY_LENGTH}`);
  }
}

/** Bytes that `encodeRawRecord` produces for this record. */
export function rawRecordLength(record: RawRecord): number {
  return RECORD_HEADER_LENGTH + record.body.length;
}

/** Writes one record at `offset`; returns the offset after it. Throws `UsageError` for an out-of-range type or body. */
export function writeRawRecord(record: RawRecord, out: Uint8Array, offset: number): number {
  checkRaw(record);
  const end = offset + rawRecordLength(record);
  if (offset < 0 || end > out.length) throw new UsageError('RECORD_BUFFER_TOO_SMALL', 'output buffer too small for record');
  const word = record.type | (record.critical ? CRITICAL_BIT : 0);
  out[offset] = word >>> 8;
  out[offset + 1] = word & 0xff;
  out[offset + 2] = record.body.length >>> 8;
  out[offset + 3] = record.body.length & 0xff;
  out.set(record.body, offset + RECORD_HEADER_LENGTH);
  return end;
}

export function encodeRawRecord(record: RawRecord): Uint8Array {
  const out = new Uint8Array(rawRecordLength(record));
  writeRawRecord(record, out, 0);
  return out;
}

/** Concatenation of the records, in order, with no terminator added. */
export function encodeRawRecords(records: readonly RawRecord[]): Uint8Array {
  let total = 0;
  for (const r of records) total += rawRecordLength(r);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const r of records) offset = writeRawRecord(r, out, offset);
  return out;
}
