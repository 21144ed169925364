/**
 * The native batched UDP socket (native/udp_batch.c through src/server/udp-batch.ts): datagrams in, answers
 * out, in batches, on real loopback sockets. On Linux the module must be there (npm install builds it): a
 * missing module would silently put the NTP service back on dgram, so it fails here rather than skips.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { nativeUdpBatch, type UdpBatch, UdpBatchSocket, type NativeUdpModule } from '../../src/server/udp-batch.js';

const loaded = nativeUdpBatch();
const linux = process.platform === 'linux';

function moduleOrFail(): NativeUdpModule {
  if (!('module' in loaded)) assert.fail(`native batched UDP unavailable: ${loaded.reason}`);
  return loaded.module;
}

/** A client socket that collects every answer. */
async function client(type: 'udp4' | 'udp6', host: string): Promise<{ socket: dgram.Socket; answers: Buffer[]; next: () => Promise<Buffer> }> {
  const socket = dgram.createSocket(type);
  const answers: Buffer[] = [];
  const waiters: Array<(b: Buffer) => void> = [];
  socket.on('message', (m) => {
    const waiter = waiters.shift();
    if (waiter) waiter(m);
    else answers.push(m);
  });
  socket.bind(0, host);
  await once(socket, 'listening');
  return {
    socket,
    answers,
    next: () =>
      new Promise<Buffer>((resolve, reject) => {
        const queued = answers.shift();
        if (queued) return resolve(queued);
        const timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2000);
        waiters.push((b) => {
          clearTimeout(timer);
          resolve(b);
        });
      }),
  };
}

const sockets: UdpBatchSocket[] = [];
after(async () => {
  await Promise.all(sockets.map((s) => s.close()));
});

/** A server answering each datagram with its bytes reversed and its source "address port" appended. */
function reverser(family: 4 | 6, host: string, extra: { slotSize?: number; slots?: number; seen?: (b: UdpBatch, i: number) => void } = {}): UdpBatchSocket {
  const socket = new UdpBatchSocket(moduleOrFail(), {
    family,
    host,
    port: 0,
    ...(extra.slots !== undefined ? { slots: extra.slots } : {}),
    ...(extra.slotSize !== undefined ? { slotSize: extra.slotSize } : {}),
    onBatch: (batch) => {
      for (let i = 0; i < batch.count; i++) {
        extra.seen?.(batch, i);
        if (batch.length(i) < 0) continue;
        const reversed = Uint8Array.from(batch.datagram(i)).reverse();
        const from = new TextEncoder().encode(` ${batch.address(i)} ${batch.port(i)} ${batch.family(i)}`);
        const out = new Uint8Array(reversed.length + from.length);
        out.set(reversed);
        out.set(from, reversed.length);
        batch.reply(i, out);
      }
    },
  });
  sockets.push(socket);
  return socket;
}

if (!linux) {
  test('off Linux there is no batched UDP, and the reason says so (the NTP service uses dgram)', () => {
    assert.ok('reason' in loaded);
  });
} else describe('native batched UDP', () => {
  test('the module loads (npm install builds it with node-gyp)', () => {
    assert.ok('module' in loaded, 'reason' in loaded ? loaded.reason : '');
  });

  test('answers each IPv4 datagram to its source, with the source address, port and family', async () => {
    const server = reverser(4, '127.0.0.1');
    const peer = await client('udp4', '127.0.0.1');
    try {
      peer.socket.send(Buffer.from('abc'), server.port, '127.0.0.1');
      const answer = (await peer.next()).toString('latin1');
      assert.equal(answer, `cba 127.0.0.1 ${peer.socket.address().port} 4`);
    } finally {
      peer.socket.close();
    }
  });

  test('answers IPv6 datagrams (v6-only socket)', async () => {
    const server = reverser(6, '::1');
    const peer = await client('udp6', '::1');
    try {
      peer.socket.send(Buffer.from('xyz'), server.port, '::1');
      assert.equal((await peer.next()).toString('latin1'), `zyx ::1 ${peer.socket.address().port} 6`);
    } finally {
      peer.socket.close();
    }
  });

  test('a burst arrives in batches of several datagrams, every one answered, with receive ages', async () => {
    let largest = 0;
    const ages: number[] = [];
    const server = reverser(4, '127.0.0.1', {
      slots: 16,
      seen: (batch, i) => {
        largest = Math.max(largest, batch.count);
        ages.push(batch.ageNanos(i));
      },
    });
    const peer = await client('udp4', '127.0.0.1');
    try {
      // Sent in one synchronous run: they queue in the socket before the loop turns to read them.
      for (let n = 0; n < 200; n++) peer.socket.send(Buffer.from(`m${n}`), server.port, '127.0.0.1');
      const got = new Set<string>();
      for (let n = 0; n < 200; n++) got.add((await peer.next()).toString('latin1').split(' ')[0] as string);
      assert.equal(got.size, 200);
      assert.ok(largest > 1, `batches of ${largest}`);
      assert.ok(largest <= 16, 'never more than the slots');
      // Kernel receive timestamps: an age from 0 to 1 s, or -1 when the kernel gave none.
      assert.ok(ages.every((a) => a === -1 || (a >= 0 && a < 1e9)));
      assert.ok(ages.some((a) => a >= 0), 'SO_TIMESTAMPNS gives receive timestamps on Linux');
      assert.equal(server.sendErrors, 0);
      assert.equal(server.receiveErrors, 0);
    } finally {
      peer.socket.close();
    }
  });

  test('a datagram longer than a slot arrives as length -1 and the socket keeps serving', async () => {
    const lengths: number[] = [];
    const server = reverser(4, '127.0.0.1', { slotSize: 64, seen: (b, i) => lengths.push(b.length(i)) });
    const peer = await client('udp4', '127.0.0.1');
    try {
      peer.socket.send(Buffer.alloc(65, 1), server.port, '127.0.0.1');
      peer.socket.send(Buffer.from('ok'), server.port, '127.0.0.1');
      assert.match((await peer.next()).toString('latin1'), /^ko /);
      assert.deepEqual(lengths, [-1, 2]);
    } finally {
      peer.socket.close();
    }
  });

  test('an answer longer than a slot is refused, not sent', async () => {
    const results: boolean[] = [];
    const server = new UdpBatchSocket(moduleOrFail(), {
      family: 4,
      host: '127.0.0.1',
      port: 0,
      slotSize: 64,
      onBatch: (batch) => {
        for (let i = 0; i < batch.count; i++) results.push(batch.reply(i, new Uint8Array(batch.length(i) === 1 ? 65 : 3)));
      },
    });
    sockets.push(server);
    const peer = await client('udp4', '127.0.0.1');
    try {
      peer.socket.send(Buffer.from('a'), server.port, '127.0.0.1');
      peer.socket.send(Buffer.from('bb'), server.port, '127.0.0.1');
      assert.equal((await peer.next()).length, 3);
      assert.deepEqual(results, [false, true]);
    } finally {
      peer.socket.close();
    }
  });

  test('binding a port in use throws EADDRINUSE; a bad address throws a type error', async () => {
    const first = reverser(4, '127.0.0.1');
    assert.throws(() => new UdpBatchSocket(moduleOrFail(), { family: 4, host: '127.0.0.1', port: first.port, onBatch: () => {} }), { code: 'EADDRINUSE' });
    assert.throws(() => new UdpBatchSocket(moduleOrFail(), { family: 4, host: '::1', port: 0, onBatch: () => {} }), /not an IPv4 address/);
    assert.throws(() => new UdpBatchSocket(moduleOrFail(), { family: 4, host: '192.0.2.1', port: 0, onBatch: () => {} }), { code: 'EADDRNOTAVAIL' });
  });

  test('close() stops receiving, frees the port and is idempotent', async () => {
    let batches = 0;
    const server = new UdpBatchSocket(moduleOrFail(), { family: 4, host: '127.0.0.1', port: 0, onBatch: () => batches++ });
    const port = server.port;
    const closing = server.close();
    assert.equal(server.close(), closing);
    await closing;
    const peer = await client('udp4', '127.0.0.1');
    peer.socket.send(Buffer.from('late'), port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    peer.socket.close();
    assert.equal(batches, 0);
    // The port is free again.
    const again = new UdpBatchSocket(moduleOrFail(), { family: 4, host: '127.0.0.1', port, onBatch: () => {} });
    await again.close();
  });
});
