/**
 * The NTS-KE reference: what node:tls alone costs per NTS-KE exchange, printed beside the server bench's table.
 *
 * A bare `node:tls` server with the same certificate, TLS 1.3, ALPN ntske/1 and no session tickets (as ntptsd's
 * listeners), that exports the two NTS keys (RFC 8915 §5.1) like a real server and answers every request with
 * one canned, well-formed NTS-KE response (eight fixed cookies) in one write, then closes. No decoding, no
 * cookie sealing, no limits or timers: what this spends, any NTS-KE server on node:tls spends at least (the
 * reason ntptsd's NTS-KE listeners use OpenSSL directly, native/tls_listener.c).
 *
 * Run as `node tls-floor.js PORT CHAIN KEY`; prints "listening" when bound.
 */
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [portText, chainFile, keyFile] = process.argv.slice(2);
if (portText === undefined || chainFile === undefined || keyFile === undefined) throw new Error('usage: tls-floor PORT CHAIN KEY');

/** An NTS-KE record (RFC 8915 §4): critical bit and type, body length, body. */
function record(type: number, body: Uint8Array, critical = true): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint16(0, (critical ? 0x8000 : 0) | type);
  new DataView(out.buffer).setUint16(2, body.length);
  out.set(body, 4);
  return out;
}

const u16 = (n: number) => Uint8Array.of(n >>> 8, n & 0xff);
const COOKIE = new Uint8Array(100).fill(0xc5);
const response = Buffer.concat([
  record(1, u16(0)), // Next Protocol: NTPv4
  record(4, u16(15)), // AEAD: AES-SIV-CMAC-256
  ...Array.from({ length: 8 }, () => record(5, COOKIE, false)), // New Cookie for NTPv4
  record(0, new Uint8Array(0)), // End of Message
]);
const LABEL = 'EXPORTER-network-time-security';
const C2S = Buffer.from([0, 0, 0, 15, 0]);
const S2C = Buffer.from([0, 0, 0, 15, 1]);

const server = tls.createServer(
  {
    cert: readFileSync(chainFile),
    key: readFileSync(keyFile),
    minVersion: 'TLSv1.3',
    secureOptions: constants.SSL_OP_NO_TICKET,
    ALPNProtocols: ['ntske/1'],
  },
  (socket) => {
    socket.on('error', () => socket.destroy());
    socket.once('data', () => {
      socket.exportKeyingMaterial(32, LABEL, C2S);
      socket.exportKeyingMaterial(32, LABEL, S2C);
      socket.end(response);
    });
  },
);
server.on('tlsClientError', () => {});
server.listen(Number(portText), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
