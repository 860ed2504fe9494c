import { hasErrors, type Checked } from '../diagnostics/diagnostic.js';
import type { ReleaseLimits } from './release-files.js';
import type { Release } from './release-model.js';
import { verifyRelease } from './verify-release.js';

/**
 * Read a release directory or bundle for use (by the planner, the catalog):
 * the release only when there is no error, and for a bundle only when every
 * file matches its manifest.json, so a tampered bundle is never planned from.
 */
export async function readRelease(path: string, displayPath?: string, limits?: Partial<ReleaseLimits>): Promise<Checked<Release>> {
  const options = { ...(displayPath === undefined ? {} : { displayPath }), ...(limits === undefined ? {} : { limits }) };
  const report = await verifyRelease(path, options);
  return { value: hasErrors(report.diagnostics) ? undefined : report.release, diagnostics: report.diagnostics };
}
