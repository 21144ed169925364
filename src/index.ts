/**
 * ntptsd as a library: the pure protocol codecs and crypto, the precise clock, the configuration loader, and
 * the NTP/NTS clients (errors are `ClientError` with a stable `code`), and the management client with the
 * protocol's shared types (`MgmtClient`; errors are `MgmtError` / `MgmtConnectionError`). Everything here is
 * usable without starting the daemon.
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
export {
  fetchEphemeralKey,
  describeEksError,
  eksErrorClientCode,
  EKS_DEFAULT_PORT,
  type EphemeralKeyOptions,
  type EphemeralKeyResult,
} from './client/eks.js';
export { queryTime, queryNtp, NtsClient, type TimeSample, type Leap, type QueryOptions, type NtsClientOptions, type TimeQueryOptions } from './client/ntp.js';

export {
  MgmtClient,
  MgmtSubscription,
  MgmtError,
  MgmtConnectionError,
  DEFAULT_MGMT_SOCKET,
  DEFAULT_MGMT_PORT,
  rpcCodeName,
  type MgmtConnectOptions,
  type MgmtConnectionErrorCode,
  type MgmtNotification,
  type MgmtSession,
} from './client/mgmt.js';
export { RpcErrorCode, type RpcError, type JsonValue, type JsonObject, type RequestId } from './proto/mgmt/jsonrpc.js';
export {
  MGMT_ALPN,
  MGMT_PROTOCOL_VERSION,
  METHODS,
  METHOD_NAMES,
  NOTIFICATION_NAMES,
  EVENT_KINDS,
  LOG_LEVELS,
  CLIENT_SORT_KEYS,
  ROLES,
  isKnownEvent,
  type MethodName,
  type MethodResult,
  type ParamsIn,
  type Results,
  type Role,
  type SessionRole,
  type AuthVia,
  type AuthMethod,
  type LogLevel,
  type ClientSortKey,
  type EventKind,
  type AuthResult,
  type StatusResult,
  type TimeStatus,
  type CertificateInfo,
  type ServicesResult,
  type ListenerInfo,
  type ServiceInfo,
  type StatsResult,
  type ClientsResult,
  type ClientInfo,
  type KeysResult,
  type RotateKeysResult,
  type EksListResult,
  type EksKeyInfo,
  type EksRevocationInfo,
  type EksRevokeResult,
  type ReloadResult,
  type LogLevelResult,
  type SubscribeResult,
  type UnsubscribeResult,
  type HelloParams,
  type KnownEvent,
  type UnknownEvent,
  type EventParams,
  type StatsNotificationParams,
} from './proto/mgmt/types.js';
