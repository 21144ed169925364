import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { freeTcpPort, freeUdpPort, loopbackConfig, startDaemon } from '../helpers/daemon.js';

test('the daemon starts, answers a plain NTP request and stops on SIGTERM with exit 0', async () => {
  const ntpPort = await freeUdpPort();
  const daemon = await startDaemon({ config: loopbackConfig(ntpPort, await freeTcpPort()) });
  try {
    assert.deepEqual(daemon.ready.ntp, [`127.0.0.1:${ntpPort}`]);
    const socket = createSocket('udp4');
    const request = Buffer.alloc(48);
    request[0] = (4 << 3) | 3;
    request.writeUInt32BE(0x12345678, 40);
    const response = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no NTP response')), 3000);
      socket.once('message', (msg) => (clearTimeout(timer), resolve(msg)));
      socket.send(request, ntpPort, '127.0.0.1');
    });
    socket.close();
    assert.equal(response.length, 48);
    assert.equal(response[0]! & 7, 4, 'server mode');
    assert.equal(response[1], 10, 'stratum from the config');
    assert.equal(response.readUInt32BE(24 + 4), 0, 'origin fraction = our transmit fraction');
    assert.equal(response.readUInt32BE(24), 0x12345678, 'origin = our transmit timestamp');
  } finally {
    assert.equal(await daemon.stop(), 0);
  }
});
