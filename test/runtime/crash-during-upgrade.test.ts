import { afterEach, describe, expect, it } from 'vitest';
import { startNode, type NodeLogEntry, type RelupNode } from '../../src/runtime/node/relup-node.js';
import { imageFromFiles, planScript } from './helpers/release-image.js';

/**
 * Issue 12 item 1: a process with a restart policy that crashes while an
 * upgrade is past its point of no return is restarted only once the
 * transaction settles (on the code and release that are then current), never
 * in the middle of it.
 */
const yaml = (version: string) => `name: cr\nversion: ${version}\nruntime: node\nmodules:\n  m:\n    file: m.js\n    exports: [initialState${version === '1.0.1' ? ', poke' : ''}]\n  wk:\n    file: wk.js\n    exports: [init, handleCall, handleCast]\nprocesses:\n  w:\n    module: wk\n    restart: permanent\n`;
const WK = `
exports.init = () => ({ n: 0, bornOn: relup.version });
exports.handleCall = (msg, state) => ({ reply: state, state });
exports.handleCast = (msg, state) => { if (msg === 'crash') throw new Error('crashed on purpose'); return state; };
`;
const M1 = 'exports.initialState = () => ({ v: 1 });\n';
// The up migration makes w crash, then keeps the transaction open a little longer.
const M2 = "exports.initialState = () => ({ v: 2 });\nexports.poke = async () => { relup.cast('w', 'crash'); await new Promise((r) => setTimeout(r, 50)); };\n";
const APPUP = 'version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - update: m\n        migration: poke\ndown:\n  - to: 1.0.0\n    instructions:\n      - update: m\n';

const nodes: RelupNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

describe('a crash during an upgrade', () => {
  it('is restarted after the transaction settles, on the release then current', async () => {
    const v1 = imageFromFiles({ 'release.yaml': yaml('1.0.0'), 'm.js': M1, 'wk.js': WK });
    const v2 = imageFromFiles({ 'release.yaml': yaml('1.0.1'), 'm.js': M2, 'wk.js': WK });
    const logs: NodeLogEntry[] = [];
    const node = await startNode({ image: v1, log: (e) => logs.push(e) });
    nodes.push(node);
    expect(await node.call('w', 'get')).toEqual({ n: 0, bornOn: '1.0.0' });
    const outcome = await node.applyScript(planScript(v1, v2, APPUP, '1.0.1'), v2);
    expect(outcome.status, outcome.message).toBe('committed');
    // Restarted once the commit settled: its init ran on 1.0.1, not in the middle of the transaction on 1.0.0.
    expect(await node.call('w', 'get')).toEqual({ n: 0, bornOn: '1.0.1' });
    expect(logs.some((e) => e.source === 'process' && e.process === 'w' && e.message.includes('restarting it (permanent'))).toBe(true);
  });
});
