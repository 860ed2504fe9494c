import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { error, type Diagnostic } from '../diagnostics/diagnostic.js';
import { UserError } from '../errors/errors.js';
import { BUNDLE_MANIFEST_FILE, BUNDLE_SIGNATURE_FILE } from './release-hash.js';

/**
 * Signed bundles. `manifest.sig` holds an ed25519 signature of the exact bytes
 * of `manifest.json`, which lists the sha256 of every file and the release
 * hash: one signature covers the whole release. The signature file is not part
 * of the release hash, so signing does not change a release's identity.
 */
export const signatureSchema = z.strictObject({
  format: z.literal(1),
  algorithm: z.literal('ed25519'),
  /** Fingerprint of the public key that verifies it (SHA256 of its SPKI DER, base64). */
  key: z.string(),
  signature: z.string(),
});
export type BundleSignature = z.infer<typeof signatureSchema>;

export function generateKeys(): { privateKeyPem: string; publicKeyPem: string; fingerprint: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    fingerprint: fingerprintOf(publicKey),
  };
}

export function fingerprintOf(publicKey: KeyObject): string {
  return `SHA256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64').replace(/=+$/, '')}`;
}

export async function readPublicKey(path: string): Promise<KeyObject> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new UserError(`cannot read the public key ${path}: ${e.message}`, 'make one with `relup keys generate`');
  });
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch (e) {
    throw new UserError(`${path} is not a PEM public key: ${(e as Error).message}`, 'use the .pub file written by `relup keys generate`');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UserError(`${path} is a ${key.asymmetricKeyType} key; relup signs with ed25519`, 'make one with `relup keys generate`');
  return key;
}

export async function readPrivateKey(path: string): Promise<KeyObject> {
  const text = await readFile(path, 'utf8').catch((e: Error) => {
    throw new UserError(`cannot read the private key ${path}: ${e.message}`, 'make one with `relup keys generate`');
  });
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (e) {
    throw new UserError(`${path} is not a PEM private key: ${(e as Error).message}`, 'use the .key file written by `relup keys generate`');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UserError(`${path} is a ${key.asymmetricKeyType} key; relup signs with ed25519`);
  return key;
}

/**
 * Check a bundle's signature against `publicKey`. Run it before anything
 * else looks at the bundle's content: an unsigned or tampered bundle must be
 * refused before its files are used.
 */
export function checkSignature(files: ReadonlyMap<string, Uint8Array>, publicKey: KeyObject, origin: string): Diagnostic[] {
  const at = { file: origin };
  const manifest = files.get(BUNDLE_MANIFEST_FILE);
  const sigBytes = files.get(BUNDLE_SIGNATURE_FILE);
  if (manifest === undefined) return [error('bundle-manifest-missing', `${origin} has no ${BUNDLE_MANIFEST_FILE}, so it cannot be signed`, at, 'build it with `relup release pack`, then `relup release sign`')];
  if (sigBytes === undefined) return [error('bundle-signature-missing', `${origin} is not signed, and a public key is configured`, at, 'sign it: relup release sign <bundle> --key <private key>')];
  let parsed: BundleSignature;
  try {
    parsed = signatureSchema.parse(JSON.parse(Buffer.from(sigBytes).toString('utf8')));
  } catch {
    return [error('bundle-signature-invalid', `${origin}: ${BUNDLE_SIGNATURE_FILE} is not a relup signature`, at, 'sign the bundle again with `relup release sign`')];
  }
  const expected = fingerprintOf(publicKey);
  if (!verify(null, manifest, publicKey, Buffer.from(parsed.signature, 'base64'))) {
    const other = parsed.key !== expected ? ` (it names key ${parsed.key}; the configured key is ${expected})` : '';
    return [error('bundle-signature-invalid', `${origin}: the signature does not verify with the configured public key${other}`, at, 'the bundle was changed after signing, or signed with another key: rebuild and sign it with the right key')];
  }
  return [];
}

