// End to end against the real daemon: keys from the EKS service over TLS 1.3 (ALPN ntp-eks/1), then NTP requests
// with MACs under them and under static keys from ntp.keys-file, and the bad input of the issue: tampered and
// truncated MACs, wrong key ids, a rotated-out generation, requests with NTS fields and a MAC, bad tokens,
// renewal proofs that do not verify, malformed requests, issuance floods, a restart.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { computeSymmetricMac, type SymmetricMacAlgorithm } from '../../src/crypto/symmetric-mac.js';
import { renewalProof } from '../../src/crypto/ephemeral-keys.js';
import { encodeRawRecords } from '../../src/proto/ntske/framing.js';
import { EKS_RENEW_EXPORTER_LABEL, EksErrorCode, renewExporterContext } from '../../src/proto/eks/records.js';
import { decodeEksMessage, encodeEksRequest, parseEksResponse, type EksParsedResponse, type EksRequest } from '../../src/proto/eks/message.js';
import { NTP_HEADER_LENGTH, encodeNtpHeader } from '../../src/proto/ntp/packet.js';
import { freeTcpPort, freeUdpPort, runDaemonExpectingFailure, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { UdpPeer, clientHeader, daemonCa, keConnect, nextMarker, ntsKeys, ntsRequestBytes, readToClose } from '../helpers/nts-client.js';

const TOKEN = 'routers-secret';
const TOKEN_SHA256 = createHash('sha256').update(TOKEN).digest('hex');

function config(ntpPort: number, kePort: number, socket: string, extra = ''): string {
  return `[daemon]
state-dir = "STATE_DIR"
log-level = "debug"

[ntp]
listen = ["127.0.0.1:${ntpPort}"]
keys-file = "KEYS_FILE"
[ntp.rate-limit]
enabled = false

[nts]
ntp-port = ${ntpPort}

[[listener]]
address = "127.0.0.1:${kePort}"
services = ["nts-ke", "eks"]
default-service = "nts-ke"

[[listener]]
path = "${socket}"
services = ["mgmt"]
${extra}`;
}

type KeyResponse = Extract<EksParsedResponse, { kind: 'key' }>;

/** One EKS exchange; `prepare` may compute a Renew record from the live session before the request is sent. */
async function eks(port: number, ca: string, request: EksRequest | Uint8Array | ((socket: tls.TLSSocket) => EksRequest)): Promise<EksParsedResponse> {
  const socket = await keConnect(port, ca, { alpn: ['ntp-eks/1'] });
  assert.equal(socket.alpnProtocol, 'ntp-eks/1');
  const reply = readToClose(socket);
  const body = request instanceof Uint8Array ? request : encodeEksRequest(typeof request === 'function' ? request(socket) : request);
  socket.write(body);
  const { data } = await reply;
  const records = decodeEksMessage(new Uint8Array(data));
  assert.ok(records.ok, `response framing: ${records.ok ? '' : records.error.message}`);
  const parsed = parseEksResponse(records.value);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.message);
  return parsed.value;
}

async function fetchKey(port: number, ca: string, request: Partial<EksRequest> = {}): Promise<KeyResponse> {
  const response = await eks(port, ca, { algorithms: [1], token: null, renew: null, ...request });
  assert.equal(response.kind, 'key', JSON.stringify(response));
  return response as KeyResponse;
}

async function renew(port: number, ca: string, held: { keyId: number; key: Uint8Array }, tamper = false): Promise<EksParsedResponse> {
  return eks(port, ca, (socket) => {
    const exported = new Uint8Array(socket.exportKeyingMaterial(16, EKS_RENEW_EXPORTER_LABEL, Buffer.from(renewExporterContext(held.keyId))));
    const proof = renewalProof(held.key, exported);
    if (tamper) proof[0] = (proof[0] as number) ^ 1;
    return { algorithms: [1], token: null, renew: { keyId: held.keyId, proof } };
  });
}

function macRequest(keyId: number, algorithm: SymmetricMacAlgorithm, key: Uint8Array): Uint8Array {
  const header = encodeNtpHeader(clientHeader(nextMarker()));
  const digest = computeSymmetricMac({ algorithm, key }, header);
  const out = new Uint8Array(NTP_HEADER_LENGTH + 4 + digest.length);
  out.set(header);
  new DataView(out.buffer).setUint32(NTP_HEADER_LENGTH, keyId);
  out.set(digest, NTP_HEADER_LENGTH + 4);
  return out;
}

/** 'verified' (a MAC under the key over the response header), 'crypto-nak', or what else came back. */
function judge(response: Buffer, keyId: number, algorithm: SymmetricMacAlgorithm, key: Uint8Array): string {
  if (response.length === NTP_HEADER_LENGTH + 4 && response.readUInt32BE(NTP_HEADER_LENGTH) === 0) return 'crypto-nak';
  if (response.length <= NTP_HEADER_LENGTH + 4) return `length ${response.length}`;
  if (response.readUInt32BE(NTP_HEADER_LENGTH) !== keyId) return `key id ${response.readUInt32BE(NTP_HEADER_LENGTH)}`;
  const expected = computeSymmetricMac({ algorithm, key }, response.subarray(0, NTP_HEADER_LENGTH));
  return Buffer.from(expected).equals(response.subarray(NTP_HEADER_LENGTH + 4)) ? 'verified' : 'bad response MAC';
}

/** One management call over the daemon's Unix socket (newline-delimited JSON-RPC). */
async function mgmt(socketPath: string, method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const socket = net.connect(socketPath);
  socket.setEncoding('utf8');
  let buffered = '';
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const message = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
        buffered = buffered.slice(nl + 1);
        if (message.id === 1) {
          socket.end();
          if (message.error !== undefined) reject(new Error(JSON.stringify(message.error)));
          else resolve(message.result as Record<string, unknown>);
        }
      }
    });
    socket.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })}\n`);
  });
}

const STATIC_KEYS = [
  { keyId: 1, algorithm: 'MD5', text: 'md5secret', key: new TextEncoder().encode('md5secret') },
  { keyId: 2, algorithm: 'SHA1', text: '0102030405060708090a0b0c0d0e0f1011121314', key: Buffer.from('0102030405060708090a0b0c0d0e0f1011121314', 'hex') },
  { keyId: 3, algorithm: 'AES128CMAC', text: '000102030405060708090a0b0c0d0e0f', key: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex') },
] as const;

describe('EKS and MAC authentication, end to end', () => {
  let dir: string;
  let daemon: RunningDaemon;
  let ntpPort: number;
  let kePort: number;
  let socketPath: string;
  let ca: string;
  let peer: UdpPeer;

  const ask = async (request: Uint8Array): Promise<Buffer> => {
    await peer.send(request, ntpPort);
    return peer.receive();
  };
  const stats = async () => (await mgmt(socketPath, 'stats')) as { ntp: Record<string, number>; services: Record<string, { counters: Record<string, number> }> };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ntptsd-eks-'));
    writeFileSync(join(dir, 'ntp.keys'), `# operator's keys\n${STATIC_KEYS.map((k) => `${k.keyId} ${k.algorithm} ${k.text}`).join('\n')}\n`);
    ntpPort = await freeUdpPort();
    kePort = await freeTcpPort();
    socketPath = join(dir, 'mgmt.sock');
    const text = config(ntpPort, kePort, socketPath, `[eks]\nissue-burst = 12\nissue-interval = "1h"\n[[eks.token]]\nname = "routers"\nsha256 = "${TOKEN_SHA256}"\n`).replace('KEYS_FILE', join(dir, 'ntp.keys'));
    daemon = await startDaemon({ config: text, dir, keepDir: true });
    ca = daemonCa(daemon.stateDir);
    peer = await UdpPeer.open();
  });

  after(async () => {
    peer.close();
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a key from the EKS service authenticates NTP: the response carries a MAC under it, no longer than the request', async () => {
    const key = await fetchKey(kePort, ca);
    assert.ok(key.keyId >= 32768 && key.keyId <= 65535);
    assert.equal(key.key.length, 16);
    assert.ok(key.lifetimeSeconds > 86_400 && key.lifetimeSeconds <= 2 * 86_400, String(key.lifetimeSeconds));
    assert.ok(Math.abs(key.expirySeconds - (Date.now() / 1000 + key.lifetimeSeconds)) < 5);
    const request = macRequest(key.keyId, 'AES128CMAC', key.key);
    const response = await ask(request);
    assert.equal(response.length, request.length);
    assert.equal(judge(response, key.keyId, 'AES128CMAC', key.key), 'verified');
    assert.equal(response[0]! & 7, 4, 'server mode');
    const counters = (await stats()).ntp;
    assert.ok((counters['mac.verified_ephemeral'] ?? 0) >= 1);
    assert.ok((counters['responses.mac'] ?? 0) >= 1);
  });

  test('static keys of ntp.keys-file (MD5, SHA1, AES128CMAC) are verified and answered under the same key', async () => {
    for (const k of STATIC_KEYS) {
      const response = await ask(macRequest(k.keyId, k.algorithm, k.key));
      assert.equal(judge(response, k.keyId, k.algorithm, k.key), 'verified', k.algorithm);
    }
    assert.ok(((await stats()).ntp['mac.verified_static'] ?? 0) >= 3);
  });

  test('reload re-reads ntp.keys-file; a broken one is refused and the keys in force stay', async () => {
    const keysPath = join(dir, 'ntp.keys');
    const original = readFileSync(keysPath, 'utf8');
    const added = { keyId: 9, key: Buffer.from('0f0e0d0c0b0a09080706050403020100', 'hex') };
    writeFileSync(keysPath, `${original}9 AES128CMAC ${added.key.toString('hex')}\n`);
    const reloaded = (await mgmt(socketPath, 'reload')) as { changed: string[] };
    assert.deepEqual(reloaded.changed, []);
    assert.equal(judge(await ask(macRequest(9, 'AES128CMAC', added.key)), 9, 'AES128CMAC', added.key), 'verified');
    writeFileSync(keysPath, `${original}50000 AES128CMAC ${added.key.toString('hex')}\n`);
    await assert.rejects(mgmt(socketPath, 'reload'), /ntp\.keys-file: .*key id 50000 is in the ephemeral key range/);
    assert.equal(judge(await ask(macRequest(9, 'AES128CMAC', added.key)), 9, 'AES128CMAC', added.key), 'verified');
    writeFileSync(keysPath, original);
    await mgmt(socketPath, 'reload');
    assert.equal(judge(await ask(macRequest(9, 'AES128CMAC', added.key)), 0, 'AES128CMAC', added.key), 'crypto-nak');
  });

  test('tampered MACs, tampered headers, wrong and unknown key ids get crypto-NAKs, counted by outcome', async () => {
    const key = await fetchKey(kePort, ca);
    const before = (await stats()).ntp;
    const tamperedMac = macRequest(key.keyId, 'AES128CMAC', key.key);
    tamperedMac[tamperedMac.length - 1]! ^= 0x01;
    const tamperedHeader = macRequest(key.keyId, 'AES128CMAC', key.key);
    tamperedHeader[45]! ^= 0x01;
    const otherId = macRequest(key.keyId === 65535 ? 32768 : key.keyId + 1, 'AES128CMAC', key.key);
    const unknownStatic = macRequest(77, 'AES128CMAC', key.key);
    const wrongAlgorithm = macRequest(2, 'AES128CMAC', Buffer.alloc(16)); // key 2 is SHA1: a 16-octet digest cannot match
    for (const request of [tamperedMac, tamperedHeader, otherId, unknownStatic, wrongAlgorithm]) {
      assert.equal(judge(await ask(request), 0, 'AES128CMAC', key.key), 'crypto-nak');
    }
    const after = (await stats()).ntp;
    const delta = (name: string) => (after[name] ?? 0) - (before[name] ?? 0);
    assert.equal(delta('mac.bad_mac'), 4);
    assert.equal(delta('mac.unknown_key'), 1);
    assert.equal(delta('kod.CRYPTO_NAK'), 5);
  });

  test('a truncated MAC is malformed: dropped and counted, and the daemon keeps serving', async () => {
    const key = await fetchKey(kePort, ca);
    const before = (await stats()).ntp['drops.malformed'] ?? 0;
    const request = macRequest(key.keyId, 'AES128CMAC', key.key).subarray(0, NTP_HEADER_LENGTH + 4 + 8);
    await peer.send(request, ntpPort);
    await assert.rejects(peer.receive(500));
    assert.equal(((await stats()).ntp['drops.malformed'] ?? 0) - before, 1);
    assert.equal(judge(await ask(macRequest(key.keyId, 'AES128CMAC', key.key)), key.keyId, 'AES128CMAC', key.key), 'verified');
  });

  test('a request carrying NTS fields and a MAC is dropped (nts_and_mac)', async () => {
    const { keys, cookies } = await ntsKeys(kePort, ca);
    const key = await fetchKey(kePort, ca);
    const nts = ntsRequestBytes(keys, cookies[0] as Uint8Array).bytes;
    const digest = computeSymmetricMac({ algorithm: 'AES128CMAC', key: key.key }, nts);
    const both = new Uint8Array(nts.length + 20);
    both.set(nts);
    new DataView(both.buffer).setUint32(nts.length, key.keyId);
    both.set(digest, nts.length + 4);
    const before = (await stats()).ntp['drops.nts_and_mac'] ?? 0;
    await peer.send(both, ntpPort);
    await assert.rejects(peer.receive(500));
    assert.equal(((await stats()).ntp['drops.nts_and_mac'] ?? 0) - before, 1);
  });

  test('tokens: a wrong token is refused even though issuance is anonymous; a right one is recorded by name', async () => {
    assert.deepEqual(await eks(kePort, ca, { algorithms: [1], token: 'wrong', renew: null }), { kind: 'error', errorCode: EksErrorCode.UNAUTHORIZED, warnings: [] });
    const key = await fetchKey(kePort, ca, { token: TOKEN });
    const list = (await mgmt(socketPath, 'eks.list')) as { keys: Array<{ keyId: number; token: string | null; address: string }> };
    const entry = list.keys.find((k) => k.keyId === key.keyId);
    assert.deepEqual(entry && { token: entry.token, address: entry.address }, { token: 'routers', address: '127.0.0.1' });
  });

  test('renewal keeps the key id; after a rotation the key changes and the old one still verifies until it expires', async () => {
    const first = await fetchKey(kePort, ca);
    const same = await renew(kePort, ca, first);
    assert.equal(same.kind, 'key');
    assert.equal((same as KeyResponse).keyId, first.keyId);
    await mgmt(socketPath, 'rotate-keys');
    const renewed = (await renew(kePort, ca, first)) as KeyResponse;
    assert.equal(renewed.kind, 'key');
    assert.equal(renewed.keyId, first.keyId);
    assert.ok(!Buffer.from(renewed.key).equals(Buffer.from(first.key)), 'a new generation gives a new key');
    assert.ok(renewed.expirySeconds > first.expirySeconds);
    assert.equal(judge(await ask(macRequest(renewed.keyId, 'AES128CMAC', renewed.key)), renewed.keyId, 'AES128CMAC', renewed.key), 'verified');
    assert.equal(judge(await ask(macRequest(first.keyId, 'AES128CMAC', first.key)), first.keyId, 'AES128CMAC', first.key), 'verified');
    // A proof under the wrong key, or for an id the client does not hold, is refused.
    assert.deepEqual(await renew(kePort, ca, first, true), { kind: 'error', errorCode: EksErrorCode.RENEWAL_REFUSED, warnings: [] });
    assert.deepEqual(await renew(kePort, ca, { keyId: first.keyId + 1, key: first.key }), { kind: 'error', errorCode: EksErrorCode.RENEWAL_REFUSED, warnings: [] });
    const eksCounters = (await stats()).services['eks']?.counters ?? {};
    assert.ok((eksCounters['issued.renewal'] ?? 0) >= 2);
    assert.ok((eksCounters['refused.renewal_refused'] ?? 0) >= 2);
  });

  test('malformed requests get Error 1, unknown critical records Error 0, no common algorithm Error 5', async () => {
    const errorOf = async (request: Uint8Array | EksRequest) => eks(kePort, ca, request as EksRequest);
    // End of Message missing after a valid MAC Algorithm record: the server waits, then the client gives up; use garbage instead.
    const garbage = encodeRawRecords([{ type: 1, critical: true, body: new Uint8Array([0, 1, 2]) }, { type: 0, critical: true, body: new Uint8Array(0) }]);
    assert.deepEqual(await errorOf(garbage), { kind: 'error', errorCode: EksErrorCode.BAD_REQUEST, warnings: [] });
    const unknownCritical = encodeRawRecords([
      { type: 1, critical: true, body: new Uint8Array([0, 1]) },
      { type: 999, critical: true, body: new Uint8Array(0) },
      { type: 0, critical: true, body: new Uint8Array(0) },
    ]);
    assert.deepEqual(await errorOf(unknownCritical), { kind: 'error', errorCode: EksErrorCode.UNRECOGNIZED_CRITICAL_RECORD, warnings: [] });
    assert.deepEqual(await errorOf({ algorithms: [7, 9], token: null, renew: null }), { kind: 'error', errorCode: EksErrorCode.NO_COMMON_ALGORITHM, warnings: [] });
    const trailing = new Uint8Array([...encodeEksRequest({ algorithms: [1], token: null, renew: null }), 0, 1, 0, 0]);
    assert.deepEqual(await errorOf(trailing), { kind: 'error', errorCode: EksErrorCode.BAD_REQUEST, warnings: [] });
    const oversized = encodeRawRecords([{ type: 4, critical: true, body: new Uint8Array(2000) }]);
    assert.deepEqual(await errorOf(oversized), { kind: 'error', errorCode: EksErrorCode.BAD_REQUEST, warnings: [] });
  });

  test('an issuance flood from one address gets issue-burst keys, then Error 4; NTP keeps answering', async () => {
    // Earlier tests used part of this address's burst of 12 (interval 1 h, renewals count): whatever is left, then Try Later.
    const results = await Promise.all(Array.from({ length: 40 }, () => eks(kePort, ca, { algorithms: [1], token: null, renew: null })));
    const refused = results.filter((r) => r.kind === 'error');
    assert.ok(refused.length >= 28, `${refused.length} refused`);
    assert.ok(refused.every((r) => r.kind === 'error' && r.errorCode === EksErrorCode.TRY_LATER));
    const k = STATIC_KEYS[2];
    assert.equal(judge(await ask(macRequest(k.keyId, k.algorithm, k.key)), k.keyId, k.algorithm, k.key), 'verified');
  });

  test('revocation (eks.revoke) is effective at once and survives a restart; other keys keep working after it', async () => {
    const list = (await mgmt(socketPath, 'eks.list')) as { keys: Array<{ keyId: number }> };
    const victim = list.keys[0]?.keyId as number;
    assert.ok(victim !== undefined);
    await mgmt(socketPath, 'eks.revoke', { keyId: victim });
    // The victim's key is not known here (only ids are listed), so judge the outcome by the counter.
    const before = (await stats()).ntp['mac.revoked'] ?? 0;
    await ask(macRequest(victim, 'AES128CMAC', new Uint8Array(16)));
    assert.equal(((await stats()).ntp['mac.revoked'] ?? 0) - before, 1);

    await daemon.stop();
    daemon = await startDaemon({ config: readFileSync(join(dir, 'ntptsd.toml'), 'utf8'), dir, keepDir: true });
    const revoked = (await mgmt(socketPath, 'eks.list')) as { revoked: Array<{ keyId: number }> };
    assert.deepEqual(revoked.revoked.map((r) => r.keyId), [victim]);
    const k = STATIC_KEYS[0];
    assert.equal(judge(await ask(macRequest(k.keyId, k.algorithm, k.key)), k.keyId, k.algorithm, k.key), 'verified');
  });
});

describe('EKS: keys survive a restart; broken keys files are clear errors', () => {
  test('a key issued before a restart verifies after it, and the next key gets a new id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ntptsd-eks-restart-'));
    try {
      const ntpPort = await freeUdpPort();
      const kePort = await freeTcpPort();
      writeFileSync(join(dir, 'ntp.keys'), '');
      const text = config(ntpPort, kePort, join(dir, 'm.sock')).replace('KEYS_FILE', join(dir, 'ntp.keys'));
      let daemon = await startDaemon({ config: text, dir, keepDir: true });
      const key = await fetchKey(kePort, daemonCa(daemon.stateDir));
      await daemon.stop();
      daemon = await startDaemon({ config: text, dir, keepDir: true });
      const peer = await UdpPeer.open();
      try {
        await peer.send(macRequest(key.keyId, 'AES128CMAC', key.key), ntpPort);
        assert.equal(judge(await peer.receive(), key.keyId, 'AES128CMAC', key.key), 'verified');
        const next = await fetchKey(kePort, daemonCa(daemon.stateDir));
        assert.notEqual(next.keyId, key.keyId);
      } finally {
        peer.close();
        await daemon.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('another node holding the same key ring verifies a key it never issued', async () => {
    const dirA = mkdtempSync(join(tmpdir(), 'ntptsd-eks-a-'));
    const dirB = mkdtempSync(join(tmpdir(), 'ntptsd-eks-b-'));
    const peer = await UdpPeer.open();
    let a: RunningDaemon | undefined;
    let b: RunningDaemon | undefined;
    try {
      writeFileSync(join(dirA, 'ntp.keys'), '');
      writeFileSync(join(dirB, 'ntp.keys'), '');
      const [ntpA, ntpB, keA, keB] = [await freeUdpPort(), await freeUdpPort(), await freeTcpPort(), await freeTcpPort()];
      a = await startDaemon({ config: config(ntpA, keA, join(dirA, 'm.sock')).replace('KEYS_FILE', join(dirA, 'ntp.keys')), dir: dirA, keepDir: true });
      const key = await fetchKey(keA, daemonCa(a.stateDir));
      // Node B: its own certificate and issuance table, node A's key ring.
      mkdirSync(join(dirB, 'state'), { mode: 0o700 });
      copyFileSync(join(a.stateDir, 'keyring.json'), join(dirB, 'state', 'keyring.json'));
      b = await startDaemon({ config: config(ntpB, keB, join(dirB, 'm.sock')).replace('KEYS_FILE', join(dirB, 'ntp.keys')), dir: dirB, keepDir: true });
      await peer.send(macRequest(key.keyId, 'AES128CMAC', key.key), ntpB);
      assert.equal(judge(await peer.receive(), key.keyId, 'AES128CMAC', key.key), 'verified');
      // Renewal happens where the key was issued: node B never hands out (or renews) node A's ids.
      assert.deepEqual(await renew(keB, daemonCa(b.stateDir), key), { kind: 'error', errorCode: EksErrorCode.RENEWAL_REFUSED, warnings: [] });
      assert.equal((await renew(keA, daemonCa(a.stateDir), key)).kind, 'key');
    } finally {
      peer.close();
      await a?.stop();
      await b?.stop();
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });

  test('an issuance is on disk before the key goes out: after a kill -9 the id is neither lost nor reissued; a torn journal line is dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ntptsd-eks-crash-'));
    try {
      const ntpPort = await freeUdpPort();
      const kePort = await freeTcpPort();
      const sock = join(dir, 'm.sock');
      writeFileSync(join(dir, 'ntp.keys'), '');
      const text = config(ntpPort, kePort, sock).replace('KEYS_FILE', join(dir, 'ntp.keys'));
      let daemon = await startDaemon({ config: text, dir, keepDir: true });
      const key = await fetchKey(kePort, daemonCa(daemon.stateDir));
      daemon.signal('SIGKILL');
      await daemon.stop();
      const journal = join(daemon.stateDir, 'eks.journal');
      assert.match(readFileSync(journal, 'utf8'), new RegExp(`"id":${key.keyId}`));
      writeFileSync(journal, `${readFileSync(journal, 'utf8')}{"op":"iss`); // a crash in the middle of an append
      daemon = await startDaemon({ config: text, dir, keepDir: true });
      try {
        await daemon.waitForLog((l) => String(l.msg).includes('unfinished entry'));
        const list = (await mgmt(sock, 'eks.list')) as { keys: Array<{ keyId: number }> };
        assert.deepEqual(list.keys.map((k) => k.keyId), [key.keyId]);
        assert.equal((await renew(kePort, daemonCa(daemon.stateDir), key)).kind, 'key', 'still renewable after the crash');
        assert.notEqual((await fetchKey(kePort, daemonCa(daemon.stateDir))).keyId, key.keyId);
      } finally {
        await daemon.stop();
      }
      // A journal damaged in the middle is not guessed around: the daemon refuses to start.
      writeFileSync(journal, `garbage\n${readFileSync(journal, 'utf8')}{"op":"revoke","revocation":{}}\n`);
      const { code, logs } = await runDaemonExpectingFailure(text, dir);
      assert.equal(code, 1);
      assert.match(String(logs.find((l) => l.level === 60 || l.level === 'fatal')?.msg), /eks\.journal is corrupt \(line 1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a static key in the ephemeral id range, or a broken keys file, stops the start naming ntp.keys-file and the line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ntptsd-eks-keys-'));
    try {
      const cases = [
        ['1 MD5 fine\n40000 AES128CMAC 000102030405060708090a0b0c0d0e0f\n', /ntp\.keys-file: .*line 2: key id 40000 is in the ephemeral key range 32768\.\.65535/],
        ['1 BLOWFISH abc\n', /ntp\.keys-file: .*line 1: unknown key type "BLOWFISH"/],
      ] as const;
      for (const [file, expected] of cases) {
        writeFileSync(join(dir, 'ntp.keys'), file);
        const text = config(await freeUdpPort(), await freeTcpPort(), join(dir, 'm.sock')).replace('KEYS_FILE', join(dir, 'ntp.keys'));
        const { code, logs } = await runDaemonExpectingFailure(text, dir);
        assert.equal(code, 1);
        const fatal = logs.find((l) => l.level === 60 || l.level === 'fatal');
        assert.match(String(fatal?.msg), expected);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
