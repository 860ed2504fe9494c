import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderJsonSchemas } from './json-schemas.js';

/**
 * Write appup.schema.json, protocol.schema.json and release.schema.json into
 * `outDir`; returns the paths written. The checked-in copies live in docs/schema/; regenerate them
 * with `UPDATE_SCHEMAS=1 npx vitest run test/schema` (or, after a build,
 * `node dist/schema/write-json-schemas.js docs/schema`).
 */
export async function writeJsonSchemas(outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const written: string[] = [];
  for (const [name, text] of Object.entries(renderJsonSchemas())) {
    const path = join(outDir, name);
    await writeFile(path, text);
    written.push(path);
  }
  return written;
}

// Run as a script: node dist/schema/write-json-schemas.js [outDir]
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await writeJsonSchemas(process.argv[2] ?? 'docs/schema');
}
