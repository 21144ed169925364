/**
 * ntptsd as a library: the pure protocol codecs and crypto, the precise clock, the configuration loader, and
 * the NTP/NTS clients (errors are `ClientError` with a stable `code`). Everything here is usable without
 * starting the daemon.
 */

export { DecodeError, UsageError, type Result } from './proto/errors.js';

export { PreciseClock, ManualClock, type Clock, type ClockSources } from './clock/clock.js';

export {
  type NtpTimestamp,
  unixMicrosToNtpTimestamp,
  ntpTimestampToUnixMicros,
  ntpTimestampDiffMicros,
  microsToNtpShort,
  ntpShortToMicros,
} from './proto/ntp/timestamp.js';
export {
  type NtpHeader,
  type NtpPacket,
  NtpMode,
  NtpLeap,
  decodeNtpPacket,
  encodeNtpPacket,
  renderRefId,
  kissCodeOf,
  kissCodeText,
} from './proto/ntp/packet.js';
export { type ExtensionField, type MacTrailer } from './proto/ntp/extensions.js';
export { NtsFieldType, decodeNtsView, type NtsView } from './proto/nts/extension-fields.js';

export { RecordDecoder, NEED_DATA } from './proto/ntske/decoder.js';
export { encodeMessage, decodeMessage, type NtsKeMessage } from './proto/ntske/message.js';
export * as ntskeRecords from './proto/ntske/records.js';

export { Cmac, aesCmac } from './crypto/cmac.js';
export { AesSiv } from './crypto/siv.js';
export { createAead, aeadById, aeadByName, AEAD_ALGORITHMS, type Aead, type AeadAlgorithm } from './crypto/aead.js';
export { constantTimeEqual } from './crypto/constant-time.js';

export { loadConfigFile, loadConfigText, defaultConfig, formatConfig, type Config } from './config/index.js';

export { ClientError, type ClientErrorCode } from './client/errors.js';
export { ntsKeyExchange, NTSKE_DEFAULT_PORT, NTP_DEFAULT_PORT, DEFAULT_CLIENT_AEADS, type NtsKeOptions, type NtsKeResult } from './client/ntske.js';
export { queryTime, queryNtp, NtsClient, type TimeSample, type Leap, type QueryOptions, type NtsClientOptions, type TimeQueryOptions } from './client/ntp.js';
