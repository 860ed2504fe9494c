import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Challenge–response over the control protocol (docs/protocol.md,
 * docs/security.md). Both sides prove they know the shared secret without
 * sending it: each proof is an HMAC-SHA256 over both fresh nonces, so a
 * recorded handshake is useless on the next connection.
 */
export const MIN_SECRET_BYTES = 16;
const NONCE_BYTES = 32;

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64');
}

/** What the client sends: proves it knows the secret, bound to this connection's node nonce. */
export function clientProof(secret: Uint8Array, nodeNonce: string, clientNonce: string): string {
  return createHmac('sha256', secret).update(`relup-auth-v1\n${nodeNonce}\n${clientNonce}`).digest('base64');
}

/** What the node answers: proves the node knows it too (different label, so a proof cannot be reflected). */
export function nodeProof(secret: Uint8Array, clientNonce: string, nodeNonce: string): string {
  return createHmac('sha256', secret).update(`relup-auth-node-v1\n${clientNonce}\n${nodeNonce}`).digest('base64');
}

/** Constant-time comparison of two base64 proofs; a malformed one is simply unequal. */
export function proofsEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'base64');
  const b = Buffer.from(given, 'base64');
  if (a.length !== 32 || b.length !== 32) return false;
  return timingSafeEqual(a, b);
}

/** A secret as read from a file or an environment variable: surrounding whitespace (a final newline) is not part of it. */
export function secretFromText(text: string): Buffer {
  return Buffer.from(text.trim(), 'utf8');
}
