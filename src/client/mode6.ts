/**
 * A mode 6 (RFC 9327) client for a local ntpd/NTPsec: the UDP shell around the pure codec in src/proto/mode6.
 *
 * - One UDP socket per client, created on first use; requests run one at a time (ntpd answers each on its
 *   own, and one outstanding request keeps reassembly simple), each with a new sequence number.
 * - Each attempt waits `timeoutMs` for the first fragment and `fragmentTimeoutMs` after each further one;
 *   a timeout, or an answer that cannot be reassembled, is retried `retries` times with a new sequence number
 *   (ntpq retries once). An error response is final.
 * - Every datagram that is not part of the answer is dropped and counted by reason in `stats.dropped`: from
 *   another address, undecodable (the decoder's code), a MAC that does not verify, a stale sequence number,
 *   duplicates, …  Nothing a peer sends can throw past this class except as a `Mode6Error`.
 * - Authentication (RFC 9327 §2 authenticator, keys from ntp.keys): with `key`, the requests ntpd refuses
 *   without it (WRITEVAR, CONFIGURE, SAVECONFIG, READ_ORDLIST_A) are signed, or all of them with
 *   `authenticate: 'always'`. NTPsec signs its answer to a signed request with the same key; an answer to a
 *   signed request without a MAC means ntpd did not accept the key (AUTH_FAILED), one whose MAC does not
 *   verify is dropped as forged. An AUTH_FAILURE error to an unsigned request is AUTH_REQUIRED.
 * - READ_MRU paging is the pure MruPager; this class only carries its requests, feeding timeouts and error
 *   codes back to it (no blind retries there: a retry with a stale nonce would be ignored by ntpd).
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { SYMMETRIC_MAC_DIGEST_LENGTH, type SymmetricKey } from '../crypto/symmetric-mac.js';
import { UsageError, type DecodeError } from '../proto/errors.js';
import { MruPager, type MruAction, type MruFilters, type MruOptions, type MruResult } from '../proto/mode6/mru.js';
import { MODE6_DEFAULT_VERSION, MODE6_MAX_FRAGMENT_DATA, Mode6ErrorCode, Mode6Opcode, decodeMode6Response, encodeMode6Request, mode6ErrorName, mode6OpcodeName, verifyMode6Mac } from '../proto/mode6/packet.js';
import { ORDERED_LIST_REQUEST, parseIfStats, parseRestrictions, type IfStatsRow, type OrderedListKind, type RestrictionRow } from '../proto/mode6/ordlist.js';
import { buildPeerRow, type PeerRow } from '../proto/mode6/peers.js';
import { MODE6_DEFAULT_MAX_FRAGMENTS, MODE6_DEFAULT_MAX_RESPONSE_DATA, Mode6Reassembly } from '../proto/mode6/reassembly.js';
import { decodePeerStatus, decodeReadStatusData, decodeSystemStatus, type AssociationStatus, type PeerStatus, type SystemStatus } from '../proto/mode6/status.js';
import { encodeVariableList, parseVariableList, variablesOf, type Mode6RequestItem, type Mode6VariableProblem, type Mode6Variables } from '../proto/mode6/variables.js';

export type Mode6ErrorKind =
  | 'TIMEOUT' // no (complete) answer after every attempt
  | 'SERVER_ERROR' // ntpd answered with an error code (details.serverError)
  | 'AUTH_REQUIRED' // ntpd wants an authenticated request and we have no key
  | 'AUTH_FAILED' // ntpd did not accept our key (or answered a signed request unsigned)
  | 'BAD_RESPONSE' // the answer broke the protocol (unusable data, overlapping fragments, no nonce, …)
  | 'MRU_STALLED' // the MRU list changed faster than it could be paged
  | 'SOCKET' // local socket error or name resolution failure
  | 'CLOSED'; // the client was closed

export class Mode6Error extends Error {
  override readonly name = 'Mode6Error';
  constructor(
    readonly code: Mode6ErrorKind,
    message: string,
    /** Facts for machine output: serverError (name), serverErrorCode, opcode, decodeCode, holes, … */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

export interface Mode6ClientOptions {
  /** Default 127.0.0.1. A name is resolved once, on first use. */
  readonly host?: string;
  /** Default 123. */
  readonly port?: number;
  /** Wait for the first fragment of an answer. Default 2000 ms. */
  readonly timeoutMs?: number;
  /** Wait for each further fragment. Default: timeoutMs. */
  readonly fragmentTimeoutMs?: number;
  /** Extra attempts after a timeout or an unusable answer. Default 1 (as ntpq). */
  readonly retries?: number;
  /** Version sent in requests. Default 2 (as ntpq). */
  readonly version?: number;
  /** Key for authenticated requests (see `authenticate`). */
  readonly key?: SymmetricKey;
  /** 'required' (default): sign only the requests ntpd refuses unsigned. 'always': sign every request. */
  readonly authenticate?: 'required' | 'always';
  /** Most fragments per answer. Default 128 (ntpd's own limit). */
  readonly maxFragments?: number;
  /** Most data octets per answer. Default 59904. */
  readonly maxResponseData?: number;
  /** Unix time in µs, for MRU nonce ages and the peers' `when`. Default: the system clock. */
  readonly now?: () => number;
}

export interface Mode6Reply {
  readonly opcode: number;
  readonly associationId: number;
  readonly status: number;
  readonly data: Uint8Array;
  readonly fragments: number;
  /** The request was signed and the answer's MAC verified. */
  readonly authenticated: boolean;
  readonly sequence: number;
}

export interface Mode6RequestOptions {
  readonly associationId?: number;
  readonly data?: Uint8Array | string;
  /** Sign this request (needs `key`). Default: per the client's `authenticate` setting. */
  readonly authenticate?: boolean;
  /** Override the client's retries for this request. */
  readonly retries?: number;
}

export interface Mode6Stats {
  requests: number;
  attempts: number;
  timeouts: number;
  datagrams: number;
  /** Datagrams dropped, by reason (decoder codes, WRONG_SOURCE, BAD_MAC, WRONG_SEQUENCE, DUPLICATE, …). */
  dropped: Record<string, number>;
}

export interface VariablesReply {
  readonly associationId: number;
  readonly status: number;
  /** Set for association 0. */
  readonly systemStatus: SystemStatus | null;
  /** Set for a peer association. */
  readonly peerStatus: PeerStatus | null;
  readonly variables: Mode6Variables;
  /** Garbage found in the text (the variables around it are kept). */
  readonly problems: readonly Mode6VariableProblem[];
  readonly authenticated: boolean;
}

export interface StatusReply {
  readonly systemStatus: SystemStatus;
  readonly associations: readonly AssociationStatus[];
}

/** Opcodes ntpd (NTPsec control_codes[]) refuses without an authenticated request. */
const AUTH_OPCODES: ReadonlySet<number> = new Set([Mode6Opcode.WriteVariables, Mode6Opcode.Configure, Mode6Opcode.SaveConfig, Mode6Opcode.ReadOrderedList]);

interface Pending {
  onMessage(msg: Buffer, from: dgram.RemoteInfo): void;
  onError(err: Mode6Error): void;
}

export class Mode6Client {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly fragmentTimeoutMs: number;
  readonly retries: number;
  readonly version: number;
  readonly stats: Mode6Stats = { requests: 0, attempts: 0, timeouts: 0, datagrams: 0, dropped: {} };
  readonly #key: SymmetricKey | undefined;
  readonly #authenticate: 'required' | 'always';
  readonly #maxFragments: number;
  readonly #maxResponseData: number;
  readonly #now: () => number;
  #socket: dgram.Socket | undefined;
  #address: Promise<{ address: string; family: 4 | 6 }> | undefined;
  #pending: Pending | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #sequence: number;
  #closed = false;

  constructor(options: Mode6ClientOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 123;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.fragmentTimeoutMs = options.fragmentTimeoutMs ?? this.timeoutMs;
    this.retries = options.retries ?? 1;
    this.version = options.version ?? MODE6_DEFAULT_VERSION;
    this.#key = options.key;
    this.#authenticate = options.authenticate ?? 'required';
    this.#maxFragments = options.maxFragments ?? MODE6_DEFAULT_MAX_FRAGMENTS;
    this.#maxResponseData = options.maxResponseData ?? MODE6_DEFAULT_MAX_RESPONSE_DATA;
    this.#now = options.now ?? (() => Date.now() * 1000);
    for (const [name, value, min] of [
      ['port', this.port, 1],
      ['timeoutMs', this.timeoutMs, 1],
      ['fragmentTimeoutMs', this.fragmentTimeoutMs, 1],
      ['retries', this.retries, 0],
      ['maxFragments', this.#maxFragments, 1],
      ['maxResponseData', this.#maxResponseData, 0],
    ] as const) {
      if (!Number.isInteger(value) || value < min) throw new UsageError('MODE6_CLIENT_OPTION', `${name} ${value} must be an integer ≥ ${min}`);
    }
    if (this.port > 65535) throw new UsageError('MODE6_CLIENT_OPTION', `port ${this.port} is above 65535`);
    if (this.#authenticate === 'always' && this.#key === undefined) throw new UsageError('MODE6_CLIENT_OPTION', "authenticate: 'always' needs a key");
    // Start at a random point so a restarted client does not take answers meant for its predecessor.
    this.#sequence = 1 + Math.floor(Math.random() * 0xfffe);
  }

  /** Closes the socket; a request in progress fails with CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending?.onError(new Mode6Error('CLOSED', 'the mode 6 client was closed'));
    this.#socket?.close();
    this.#socket = undefined;
  }

  /** One request/answer exchange with retries. Requests from concurrent callers run one after the other. */
  request(opcode: number, options: Mode6RequestOptions = {}): Promise<Mode6Reply> {
    const run = this.#queue.then(() => this.#request(opcode, options, options.retries ?? this.retries));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** READSTAT of association 0: the system status and every association with its peer status (RFC 9327 §4). */
  async readStatus(): Promise<StatusReply> {
    const reply = await this.request(Mode6Opcode.ReadStatus);
    const decoded = decodeReadStatusData(reply.data);
    if (!decoded.ok) throw badResponse(decoded.error, 'READSTAT');
    return { systemStatus: decodeSystemStatus(reply.status), associations: decoded.value };
  }

  /** READVAR: the system variables (association 0) or a peer's; all of them, or the `names` given. */
  async readVariables(associationId = 0, names?: readonly Mode6RequestItem[]): Promise<VariablesReply> {
    const data = names === undefined || names.length === 0 ? '' : encodeVariableList(names);
    const reply = await this.request(Mode6Opcode.ReadVariables, { associationId, data });
    const { variables, problems } = variablesOf(parseVariableList(reply.data));
    return {
      associationId,
      status: reply.status,
      systemStatus: associationId === 0 ? decodeSystemStatus(reply.status) : null,
      peerStatus: associationId === 0 ? null : decodePeerStatus(reply.status),
      variables,
      problems,
      authenticated: reply.authenticated,
    };
  }

  /** REQ_NONCE: a nonce for READ_MRU (valid about 16 s). */
  async requestNonce(): Promise<string> {
    const reply = await this.request(Mode6Opcode.RequestNonce);
    const nonce = variablesOf(parseVariableList(reply.data)).variables.get('nonce');
    if (typeof nonce !== 'string' || !/^[0-9a-f]{8,64}$/i.test(nonce)) {
      throw new Mode6Error('BAD_RESPONSE', 'the REQ_NONCE answer holds no nonce', { opcode: 'REQ_NONCE' });
    }
    return nonce;
  }

  /** The whole MRU list (READ_MRU paging, see MruPager for the rules). */
  async readMru(filters: MruFilters = {}, options: MruOptions = {}): Promise<MruResult> {
    const pager = new MruPager(filters, options);
    let action: MruAction = pager.start(this.#now());
    let lastServerError: { code: number; name: string } | undefined;
    while (action.kind === 'send') {
      try {
        const reply = await this.request(action.opcode, { data: action.data, retries: 0 });
        action = pager.onResponse(reply.data, this.#now());
      } catch (err) {
        if (!(err instanceof Mode6Error)) throw err;
        if (err.code === 'TIMEOUT' || err.code === 'BAD_RESPONSE') action = pager.onTimeout(this.#now());
        else if (err.code === 'SERVER_ERROR') {
          const code = err.details['serverErrorCode'] as number;
          lastServerError = { code, name: mode6ErrorName(code) };
          action = pager.onServerError(code, this.#now());
        } else throw err;
      }
    }
    if (action.kind === 'done') return action.result;
    const e = action.error;
    const details = { decodeCode: e.code, entries: pager.entries().length, ...(lastServerError !== undefined ? { serverError: lastServerError.name, serverErrorCode: lastServerError.code } : {}) };
    if (e.code === 'MODE6_MRU_STALLED') throw new Mode6Error('MRU_STALLED', e.message, details);
    if (e.code === 'MODE6_MRU_TIMEOUT') throw new Mode6Error('TIMEOUT', `MRU paging: ${e.message}`, details);
    if (e.code === 'MODE6_MRU_SERVER_ERROR' || e.code === 'MODE6_MRU_BAD_VALUE') throw new Mode6Error('SERVER_ERROR', e.message, details);
    throw new Mode6Error('BAD_RESPONSE', e.message, details);
  }

  /** READ_ORDLIST_A `ifstats`: ntpd's local addresses and their counters (needs the control key). */
  async readOrderedList(kind: 'ifstats'): Promise<IfStatsRow[]>;
  /** READ_ORDLIST_A `addr_restrictions`: the restrict list (needs the control key). */
  async readOrderedList(kind: 'addr_restrictions'): Promise<RestrictionRow[]>;
  async readOrderedList(kind: OrderedListKind): Promise<IfStatsRow[] | RestrictionRow[]> {
    const data = ORDERED_LIST_REQUEST[kind];
    if (data === undefined) throw new UsageError('MODE6_BAD_LIST', `unknown ordered list ${String(kind)}`);
    const reply = await this.request(Mode6Opcode.ReadOrderedList, { data });
    const { variables } = variablesOf(parseVariableList(reply.data));
    const rows = kind === 'ifstats' ? parseIfStats(variables) : parseRestrictions(variables);
    if (!rows.ok) throw badResponse(rows.error, 'READ_ORDLIST_A');
    return rows.value;
  }

  /** The `ntpq -p -n` billboard: READSTAT, then READVAR of every association. */
  async readPeers(): Promise<PeerRow[]> {
    const { associations } = await this.readStatus();
    const rows: PeerRow[] = [];
    for (const a of associations) {
      const reply = await this.readVariables(a.associationId);
      rows.push(buildPeerRow({ associationId: a.associationId, status: reply.status, variables: reply.variables }, this.#now(), { version: this.version }));
    }
    return rows;
  }

  // --- the exchange ---

  #drop(reason: string): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
  }

  async #request(opcode: number, options: Mode6RequestOptions, retries: number): Promise<Mode6Reply> {
    if (this.#closed) throw new Mode6Error('CLOSED', 'the mode 6 client was closed');
    const sign = options.authenticate ?? (this.#key !== undefined && (this.#authenticate === 'always' || AUTH_OPCODES.has(opcode)));
    if (sign && this.#key === undefined) throw new UsageError('MODE6_NO_KEY', 'an authenticated request needs a key');
    const associationId = options.associationId ?? 0;
    const data = options.data ?? '';
    if ((typeof data === 'string' ? data.length : data.length) > MODE6_MAX_FRAGMENT_DATA) {
      throw new UsageError('MODE6_DATA_TOO_LONG', `request data over ${MODE6_MAX_FRAGMENT_DATA} octets`);
    }
    this.stats.requests++;
    let last: Mode6Error | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      try {
        return await this.#attempt(opcode, associationId, data, sign);
      } catch (err) {
        if (!(err instanceof Mode6Error) || (err.code !== 'TIMEOUT' && err.code !== 'BAD_RESPONSE')) throw err;
        last = err;
      }
    }
    throw last as Mode6Error;
  }

  async #open(): Promise<{ socket: dgram.Socket; address: string }> {
    this.#address ??= (async () => {
      const literal = isIP(this.host);
      if (literal !== 0) return { address: this.host, family: literal as 4 | 6 };
      try {
        const found = await lookup(this.host);
        return { address: found.address, family: found.family === 6 ? 6 : 4 };
      } catch (error) {
        throw new Mode6Error('SOCKET', `cannot resolve ${this.host}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
    })();
    const { address, family } = await this.#address;
    if (this.#closed) throw new Mode6Error('CLOSED', 'the mode 6 client was closed');
    if (this.#socket === undefined) {
      const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      socket.on('message', (msg, from) => {
        this.stats.datagrams++;
        if (this.#pending === undefined) return this.#drop('NO_REQUEST');
        this.#pending.onMessage(msg, from);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        this.#pending?.onError(new Mode6Error('SOCKET', `socket error talking to ${address}:${this.port}: ${err.code ?? err.message}`));
      });
      // An idle client must not keep the process alive; a request in flight does, through its timer.
      socket.unref();
      this.#socket = socket;
    }
    return { socket: this.#socket, address };
  }

  async #attempt(opcode: number, associationId: number, data: Uint8Array | string, sign: boolean): Promise<Mode6Reply> {
    const { socket, address } = await this.#open();
    const key = sign ? this.#key : undefined;
    this.#sequence = this.#sequence >= 0xffff ? 1 : this.#sequence + 1;
    const sequence = this.#sequence;
    const request = encodeMode6Request({ opcode, sequence, associationId, data, version: this.version }, key);
    const reassembly = new Mode6Reassembly({ opcode, sequence, associationId }, { maxFragments: this.#maxFragments, maxDataLength: this.#maxResponseData });
    const macLength = key === undefined ? undefined : SYMMETRIC_MAC_DIGEST_LENGTH[key.algorithm];
    const opName = mode6OpcodeName(opcode);
    this.stats.attempts++;

    return new Promise<Mode6Reply>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (result: Mode6Reply | Mode6Error): void => {
        clearTimeout(timer);
        if (this.#pending === pending) this.#pending = undefined;
        if (result instanceof Mode6Error) reject(result);
        else resolve(result);
      };
      const arm = (ms: number): void => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          this.stats.timeouts++;
          const got = reassembly.fragmentCount;
          finish(
            new Mode6Error('TIMEOUT', got === 0 ? `no answer to ${opName} from ${address}:${this.port} within ${ms} ms` : `${opName} answer from ${address}:${this.port} incomplete after ${ms} ms (${got} fragments)`, {
              opcode: opName,
              fragments: got,
              holes: reassembly.holes(),
            }),
          );
        }, ms);
      };
      const pending: Pending = {
        onError: (err) => finish(err),
        onMessage: (msg, from) => {
          if (from.address !== address || from.port !== this.port) return this.#drop('WRONG_SOURCE');
          const decoded = decodeMode6Response(msg, macLength === undefined ? undefined : { macLength });
          if (!decoded.ok) return this.#drop(decoded.error.code);
          const packet = decoded.value;
          const ours = packet.sequence === sequence && packet.opcode === opcode && packet.associationId === associationId;
          if (key !== undefined && ours) {
            if (packet.mac === null) {
              // NTPsec signs every answer to a request whose MAC it accepted; no MAC means it did not.
              const said = packet.error ? ` (it answered ${mode6ErrorName(packet.status >>> 8)})` : '';
              return finish(new Mode6Error('AUTH_FAILED', `ntpd did not accept key ${key.keyId} for ${opName}${said}`, { opcode: opName, keyId: key.keyId, ...(packet.error ? { serverError: mode6ErrorName(packet.status >>> 8), serverErrorCode: packet.status >>> 8 } : {}) }));
            }
            if (!verifyMode6Mac(msg, packet, key)) return this.#drop('BAD_MAC');
          }
          const state = reassembly.accept(packet);
          if (state.kind === 'incomplete') {
            if (state.ignored !== null) this.#drop(state.ignored);
            else arm(this.fragmentTimeoutMs);
            return undefined;
          }
          if (state.kind === 'complete') {
            return finish({ opcode, associationId, status: state.status, data: state.data, fragments: state.fragments, authenticated: key !== undefined, sequence });
          }
          if (state.serverError !== null) {
            const code = state.serverError.code;
            const name = mode6ErrorName(code);
            const details = { opcode: opName, serverError: name, serverErrorCode: code };
            if (code === Mode6ErrorCode.AuthFailure) {
              return finish(
                key === undefined
                  ? new Mode6Error('AUTH_REQUIRED', `ntpd refuses ${opName} without authentication (${name})`, details)
                  : new Mode6Error('AUTH_FAILED', `ntpd refused key ${key.keyId} for ${opName} (${name})`, { ...details, keyId: key.keyId }),
              );
            }
            return finish(new Mode6Error('SERVER_ERROR', `ntpd answered ${opName} with ${name} (${code})`, details));
          }
          return finish(new Mode6Error('BAD_RESPONSE', `${opName} answer: ${state.error.message}`, { opcode: opName, decodeCode: state.error.code }));
        },
      };
      this.#pending = pending;
      arm(this.timeoutMs);
      socket.send(request, this.port, address, (err) => {
        if (err !== null && err !== undefined) finish(new Mode6Error('SOCKET', `cannot send to ${address}:${this.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { opcode: opName }));
      });
    });
  }
}

function badResponse(error: DecodeError, opcode: string): Mode6Error {
  return new Mode6Error('BAD_RESPONSE', `${opcode} answer: ${error.message}`, { opcode, decodeCode: error.code });
}
