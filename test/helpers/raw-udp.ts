/**
 * Sends a UDP datagram to 127.0.0.1 with source port 0, which no ordinary socket can do (binding port 0 picks
 * an ephemeral port) but anyone with a raw socket, or spoofing on the path, can. Node has no raw sockets, so
 * a few lines of Python do it; tests fail when Python or CAP_NET_RAW is missing.
 */
import { spawn } from 'node:child_process';

const SCRIPT = `
import socket, struct, sys
port = int(sys.argv[1])
payload = bytes.fromhex(sys.argv[2])
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
except PermissionError:
    print("unavailable")
    sys.exit(0)
# UDP header: source port 0, destination, length, checksum 0 (none, allowed for IPv4); the kernel adds the IP header.
s.sendto(struct.pack("!HHHH", 0, port, 8 + len(payload), 0) + payload, ("127.0.0.1", 0))
print("sent")
`;

/** 'sent', or 'unavailable' when python3 or the permission for a raw socket is missing. */
export function sendFromPortZero(port: number, payload: Uint8Array): Promise<'sent' | 'unavailable'> {
  return new Promise((resolve) => {
    const child = spawn('python3', ['-c', SCRIPT, String(port), Buffer.from(payload).toString('hex')], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    child.once('error', () => resolve('unavailable'));
    child.once('close', (code) => resolve(code === 0 && out.trim() === 'sent' ? 'sent' : 'unavailable'));
  });
}
