import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { APPLY_STATUSES, stepEventSchema } from '../../src/protocol/apply-outcome.js';
import { HANDSHAKE_MAX_FRAME_BYTES } from '../../src/protocol/framing.js';
import { ERROR_CODES, OPS, OP_NAMES, PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { statusResultSchema } from '../../src/protocol/status-result.js';
import { applyOutcomeSchema } from '../../src/protocol/apply-outcome.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HANDSHAKES } from '../../src/runtime/node-host/control-server.js';
import { REPO } from '../helpers/repo-paths.js';

/** docs/protocol.md is the contract other runtimes are written against: it must name what the code sends, spelled as the code spells it. */
const doc = await readFile(join(REPO, 'docs', 'protocol.md'), 'utf8');
const backticked = new Set([...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!));

describe('docs/protocol.md matches the code', () => {
  it('names every op, error code and apply outcome, spelled as on the wire', () => {
    for (const name of [...OP_NAMES, ...ERROR_CODES, ...APPLY_STATUSES]) expect(backticked.has(name), name).toBe(true);
    for (const wrong of ['dry_run', 'rolled_back', 'rollback_failed']) expect(doc.includes(wrong), wrong).toBe(false);
  });

  it('documents every field of the status result, the outcome and the step event', () => {
    const fields = (schema: { shape: Record<string, unknown> }) => Object.keys(schema.shape);
    for (const f of [...fields(statusResultSchema), ...fields(applyOutcomeSchema), ...fields(stepEventSchema), ...Object.keys(OPS.apply.params.shape)]) {
      expect(doc.includes(`\`${f}\``) || doc.includes(`${f}?`) || doc.includes(`, ${f}`), f).toBe(true);
    }
  });

  it('shows the current protocol version and limits', () => {
    expect(doc).toContain(`{"type":"hello","protocol":${PROTOCOL_VERSION},"client"`);
    expect(doc).toContain(`| ${HANDSHAKE_MAX_FRAME_BYTES / 1024} KiB |`);
    expect(doc).toContain(`| ${DEFAULT_MAX_CONNECTIONS} |`);
    expect(doc).toContain(`| ${DEFAULT_MAX_HANDSHAKES} |`);
  });
});
