import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, type NtsKeMessage } from '../../src/proto/ntske/message.js';
import { encodeRawRecords } from '../../src/proto/ntske/framing.js';
import {
  type NtsKeRecord,
  aeadAlgorithmRecord,
  nextProtocolRecord,
  unknownRecord,
  warningRecord,
  AeadAlgorithms,
  NextProtocols,
} from '../../src/proto/ntske/records.js';
import { exporterContext, negotiate, type NtsKeServerSettings } from '../../src/proto/ntske/server.js';

const settings: NtsKeServerSettings = { aeadAlgorithms: [15, 17], cookies: 8 };
const ntpv4 = NextProtocols.decode(0);
const aead = (...ids: number[]) => aeadAlgorithmRecord(ids.map((id) => AeadAlgorithms.decode(id)));

function request(records: NtsKeRecord[]): NtsKeMessage {
  const decoded = decodeMessage(encodeMessage(records), 'request');
  assert.ok(decoded.ok);
  return decoded.value;
}

function response(bytes: Uint8Array): NtsKeMessage {
  const decoded = decodeMessage(bytes, 'response');
  assert.ok(decoded.ok, 'the server response decodes');
  return decoded.value;
}

test('accepts NTPv4 with the client\'s most preferred AEAD we support, and sends the cookies', () => {
  const outcome = negotiate(request([nextProtocolRecord([ntpv4]), aead(16, 17, 15)]), settings);
  assert.equal(outcome.kind, 'accept');
  if (outcome.kind !== 'accept') return;
  assert.equal(outcome.aead, 17); // 16 is not enabled here, 17 comes before 15 in the client's list
  assert.equal(outcome.cookieCount, 8);
  const cookies = Array.from({ length: 8 }, (_, i) => new Uint8Array(100).fill(i));
  const view = response(outcome.respond(cookies));
  assert.deepEqual(view.violations, []);
  assert.deepEqual(view.nextProtocols, [ntpv4]);
  assert.deepEqual(view.aeadAlgorithms, [AeadAlgorithms.decode(17)]);
  assert.equal(view.cookies.length, 8);
  assert.equal(view.server, undefined);
  assert.equal(view.port, undefined);
});

test('sends Server and Port records when configured; no Port record for 123', () => {
  const req = request([nextProtocolRecord([ntpv4]), aead(15)]);
  const withBoth = negotiate(req, { ...settings, ntpServer: 'time.example', ntpPort: 1123 });
  assert.equal(withBoth.kind, 'accept');
  if (withBoth.kind !== 'accept') return;
  const view = response(withBoth.respond([new Uint8Array(10)]));
  assert.equal(view.server, 'time.example');
  assert.equal(view.port, 1123);
  const default123 = negotiate(req, { ...settings, ntpPort: 123 });
  assert.ok(default123.kind === 'accept');
  assert.equal(response(default123.respond([new Uint8Array(10)])).port, undefined);
});

test('no common AEAD: an empty AEAD record and no cookies (RFC 8915 §4.1.5)', () => {
  const outcome = negotiate(request([nextProtocolRecord([ntpv4]), aead(30, 31)]), settings);
  assert.equal(outcome.kind, 'no-agreement');
  if (outcome.kind !== 'no-agreement') return;
  assert.equal(outcome.reason, 'NTSKE_NO_COMMON_AEAD');
  const view = response(outcome.response);
  assert.deepEqual(view.aeadAlgorithms, []);
  assert.equal(view.cookies.length, 0);
});

test('no common protocol: an empty Next Protocol record (RFC 8915 §4.1.2)', () => {
  const outcome = negotiate(request([nextProtocolRecord([NextProtocols.decode(0x8000)]), aead(15)]), settings);
  assert.equal(outcome.kind, 'no-agreement');
  if (outcome.kind !== 'no-agreement') return;
  assert.equal(outcome.reason, 'NTSKE_NO_COMMON_PROTOCOL');
  assert.deepEqual(response(outcome.response).nextProtocols, []);
});

const errorCases: Array<[string, Uint8Array, number, string]> = [
  ['no Next Protocol record', encodeMessage([aead(15)]), 1, 'NTSKE_MISSING_NEXT_PROTOCOL'],
  ['NTPv4 without an AEAD record', encodeMessage([nextProtocolRecord([ntpv4])]), 1, 'NTSKE_MISSING_AEAD'],
  ['two Next Protocol records', encodeMessage([nextProtocolRecord([ntpv4]), nextProtocolRecord([ntpv4]), aead(15)]), 1, 'NTSKE_DUPLICATE_NEXT_PROTOCOL'],
  ['an unknown critical record', encodeMessage([nextProtocolRecord([ntpv4]), aead(15), unknownRecord(0x1234, true, new Uint8Array(3))]), 0, 'NTSKE_UNRECOGNIZED_CRITICAL_RECORD'],
  ['a warning in the request', encodeMessage([nextProtocolRecord([ntpv4]), aead(15), warningRecord({ unknown: 7 })]), 1, 'NTSKE_WARNING_IN_REQUEST'],
  // Next Protocol without the critical bit, hand-framed because the constructor always sets it.
  ['Next Protocol without the critical bit', encodeRawRecords([{ type: 1, critical: false, body: Uint8Array.of(0, 0) }, { type: 4, critical: false, body: Uint8Array.of(0, 15) }, { type: 0, critical: true, body: new Uint8Array(0) }]), 1, 'NTSKE_CRITICAL_BIT_MISSING'],
];

for (const [name, bytes, code, reason] of errorCases) {
  test(`error record ${code} for ${name}`, () => {
    const decoded = decodeMessage(bytes, 'request');
    assert.ok(decoded.ok);
    const outcome = negotiate(decoded.value, settings);
    assert.equal(outcome.kind, 'error');
    if (outcome.kind !== 'error') return;
    assert.equal(outcome.errorCode, code);
    assert.equal(outcome.reason, reason);
    const view = response(outcome.response);
    assert.deepEqual(view.errors.map((e) => ('known' in e ? e.known : e.unknown)), [code === 0 ? 'UNRECOGNIZED_CRITICAL_RECORD' : 'BAD_REQUEST']);
  });
}

test('unknown non-critical records are ignored', () => {
  const outcome = negotiate(request([nextProtocolRecord([ntpv4]), unknownRecord(0x4000, false, new Uint8Array(2)), aead(15)]), settings);
  assert.equal(outcome.kind, 'accept');
});

test('exporter context layout (RFC 8915 §5.1)', () => {
  assert.deepEqual([...exporterContext(0, 15, 'c2s')], [0, 0, 0, 15, 0]);
  assert.deepEqual([...exporterContext(0, 17, 's2c')], [0, 0, 0, 17, 1]);
});
