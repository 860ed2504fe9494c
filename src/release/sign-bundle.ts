import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { error, hasErrors, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { fingerprintOf, type BundleSignature } from './bundle-signature.js';
import { readReleaseFiles } from './release-files.js';
import { BUNDLE_MANIFEST_FILE, BUNDLE_SIGNATURE_FILE } from './release-hash.js';
import { tarGz } from './tar-writer.js';
import { verifyFiles } from './verify-release.js';

/** Add (or replace) `manifest.sig` in a bundle, after checking the bundle itself verifies. Written atomically. */
export async function signBundle(bundlePath: string, privateKey: KeyObject, displayPath = bundlePath): Promise<Checked<{ fingerprint: string; bundlePath: string }>> {
  const read = await readReleaseFiles(bundlePath, { displayPath });
  if (read.value === undefined) return { value: undefined, diagnostics: read.diagnostics };
  if (read.value.kind !== 'bundle') {
    return { value: undefined, diagnostics: [error('sign-not-a-bundle', `${displayPath} is a directory; only bundles are signed`, { file: displayPath }, `pack it first: relup release pack ${displayPath}`)] };
  }
  const report = verifyFiles(read.value, displayPath);
  const diagnostics: Diagnostic[] = [...read.diagnostics, ...report.diagnostics];
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
  const manifest = read.value.files.get(BUNDLE_MANIFEST_FILE)!;
  const publicKey = createPublicKey(privateKey);
  const fingerprint = fingerprintOf(publicKey);
  const signature: BundleSignature = { format: 1, algorithm: 'ed25519', key: fingerprint, signature: sign(null, manifest, privateKey).toString('base64') };
  const rest = [...read.value.files].filter(([p]) => p !== BUNDLE_MANIFEST_FILE && p !== BUNDLE_SIGNATURE_FILE).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = await tarGz([[BUNDLE_MANIFEST_FILE, manifest], [BUNDLE_SIGNATURE_FILE, Buffer.from(`${JSON.stringify(signature, null, 2)}\n`)], ...rest]);
  await writeFileAtomic(bundlePath, bytes);
  return { value: { fingerprint, bundlePath }, diagnostics };
}
