/**
 * NTS-KE for the load generator: the project's own client (src/client/ntske.ts) offering only
 * AEAD_AES_SIV_CMAC_256, with its failures turned into the codes the generator counts.
 */
import { AEAD_AES_SIV_CMAC_256 } from '../../src/crypto/aead.js';
import { ClientError } from '../../src/client/errors.js';
import { ntsKeyExchange } from '../../src/client/ntske.js';

export interface NtsKeTarget {
  readonly host: string;
  readonly port: number;
  readonly caPem: string;
  readonly servername: string;
  readonly timeoutMs: number;
}

export interface NtsKeSession {
  readonly aead: number;
  readonly c2s: Uint8Array;
  readonly s2c: Uint8Array;
  readonly cookies: Uint8Array[];
  /** From the Server Negotiation record, else the NTS-KE host (§4.1.7). */
  readonly ntpHost: string;
  /** From the Port Negotiation record, else 123 (§4.1.8). */
  readonly ntpPort: number;
}

/** An exchange that failed; `code` is what the generator counts (a TLS/socket error code or ours). */
export class NtsKeFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function ntsKeExchange(target: NtsKeTarget): Promise<NtsKeSession> {
  try {
    const result = await ntsKeyExchange(target.host, {
      port: target.port,
      ca: target.caPem,
      servername: target.servername,
      timeoutMs: target.timeoutMs,
      aeadAlgorithms: [AEAD_AES_SIV_CMAC_256],
    });
    return { aead: result.aead.id, c2s: result.c2s, s2c: result.s2c, cookies: result.cookies, ntpHost: result.ntpHost, ntpPort: result.ntpPort };
  } catch (error) {
    if (error instanceof ClientError) throw new NtsKeFailure(error.code, error.message);
    throw error;
  }
}
