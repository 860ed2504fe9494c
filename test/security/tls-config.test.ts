import { describe, expect, it } from 'vitest';
import { parseConfig, resolveTarget } from '../../src/config/load-config.js';

/** The `tls` key of a TCP target in relup.config.yaml: a CA file (relative to the config file) or a certificate fingerprint. */
describe('relup.config.yaml: tls of a TCP target', () => {
  const load = (tls: string) => parseConfig(`targets:\n  n:\n    host: 10.0.0.7\n    port: 7070\n    secretEnv: S\n${tls}`, 'relup.config.yaml');

  it('resolves a CA file against the config directory, and keeps a fingerprint as written', () => {
    const ca = load('    tls:\n      ca: certs/ca.pem\n      servername: node.example.com\n');
    expect(ca.diagnostics).toEqual([]);
    expect(resolveTarget({ config: ca.value!, baseDir: '/etc/relup', file: '/etc/relup/relup.config.yaml' }, 'n').tls).toEqual({ caFile: '/etc/relup/certs/ca.pem', servername: 'node.example.com' });
    const fp = `${'ab:'.repeat(31)}ab`;
    const pinned = load(`    tls:\n      fingerprint: "${fp}"\n`);
    expect(resolveTarget({ config: pinned.value!, baseDir: '/', file: undefined }, 'n').tls).toEqual({ fingerprint: fp });
  });

  it('refuses, with a located diagnostic, a fingerprint that is not sha256, both kinds at once, and a misspelt key', () => {
    for (const bad of ['    tls:\n      fingerprint: "ab:cd"\n', '    tls:\n      ca: a.pem\n      fingerprint: "' + 'ab'.repeat(32) + '"\n', '    tls:\n      fingerprnt: "' + 'ab'.repeat(32) + '"\n']) {
      const r = load(bad);
      expect(r.value, bad).toBeUndefined();
      expect(r.diagnostics.length, bad).toBeGreaterThan(0);
      for (const d of r.diagnostics) expect(d).toMatchObject({ code: expect.stringMatching(/^config-/), file: 'relup.config.yaml', line: expect.any(Number) });
    }
  });
});
