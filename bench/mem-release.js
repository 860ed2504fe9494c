// The release of the memory benchmark: one ~100 KB module `big` with a
// process `worker`, at version 1.0.0 (salt 0) or 1.0.N (salt N, new code), and
// the appup of 1.0.N (up from 1.0.0, down to 1.0.0, a migration each way).
import { parseAppup } from '../dist/appup/parse-appup.js';
import { releaseFromFiles } from '../dist/release/release-from-files.js';
import { BIG_EXPORTS, bigRelupModule } from './big-module.js';

const releaseYaml = (version) => `name: mem\nversion: ${version}\nruntime: node\nmodules:\n  big: { file: big.js, exports: [${BIG_EXPORTS.join(', ')}] }\nprocesses:\n  worker: { module: big }\n`;

const appupYaml = (version) => `version: ${version}
up:
  - from: 1.0.0
    instructions:
      - update: big
        migration: up
down:
  - to: 1.0.0
    instructions:
      - update: big
        migration: down
`;

export function image(version, salt) {
  const files = new Map([
    ['release.yaml', Buffer.from(releaseYaml(version))],
    ['big.js', Buffer.from(bigRelupModule(salt))],
  ]);
  const parsed = releaseFromFiles({ files, kind: 'dir', origin: `mem-${version}` }, `mem-${version}`);
  if (parsed.value === undefined) throw new Error(`memory bench release ${version}: ${JSON.stringify(parsed.diagnostics)}`);
  return { release: parsed.value, files };
}

export function appup(version) {
  const parsed = parseAppup(appupYaml(version), `appups/${version}.yaml`);
  if (parsed.value === undefined) throw new Error(`memory bench appup: ${JSON.stringify(parsed.diagnostics)}`);
  return new Map([[version, parsed.value]]);
}

