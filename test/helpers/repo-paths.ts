import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root, so tests can read the demo releases and run the built CLI. */
export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const DEMO_RELEASES = join(REPO, 'releases');
export const DEMO_APPUPS = join(REPO, 'appups');
/** The CLI as shipped (package.json bin): the esbuild bundle `npm run build` makes (src/cli/build-cli-bundle.mjs). */
export const CLI = join(REPO, 'dist', 'cli', 'bundle', 'relup.js');
