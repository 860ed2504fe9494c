import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { parse } from 'yaml';
import type { Target } from '../../src/client/target.js';
import { CONFIG_FILE, type RelupConfig } from '../../src/config/config-schema.js';
import { loadConfig, resolveDir, resolveTarget, type LoadedConfig } from '../../src/config/load-config.js';
import type { Diagnostic } from '../../src/diagnostics/diagnostic.js';
import { ConfigError, UserError } from '../../src/errors/errors.js';
import { parseConfig } from '../../src/config/load-config.js';
import { checkChecked, checkDiagnostic, fuzzAsync, fuzz, lineCount, noThrow, runs, Summary, timeoutFor } from './kit.js';
import { keysOf, lenient, mutants, YAML_TOKENS, type Mutant } from './mutate.js';

/**
 * relup.config.yaml. loadConfig reads a file; the fuzzing runs its parse and
 * validate steps on text (the same calls, in the same order), and a sample
 * through loadConfig itself on real files to show the two agree.
 */
const summary = new Summary('config file');

const SEED_TEXT = `# relup.config.yaml (README)
releases: releases
appups: appups
defaultTarget: local
targets:
  local:
    socket: run/demo.sock
  prod:
    host: 10.0.0.7
    port: 7070
    secretFile: secrets/prod.key
    secretEnv: RELUP_SECRET
    tls:
      ca: secrets/ca.pem
      servername: prod.example.com
  edge:
    host: edge.example.com
    port: 7071
    secretEnv: RELUP_EDGE_SECRET
    tls:
      fingerprint: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
publicKey: keys/relup.pub
`;
const SEED_VALUE = parse(SEED_TEXT) as unknown;

const RULES = (text: string) => ({ code: /^(config-[a-z-]+|yaml-syntax|yaml-reserved-key|yaml-too-large)$/, file: CONFIG_FILE, lines: lineCount(text) });

function validTarget(t: Target): boolean {
  return t.kind === 'unix'
    ? typeof t.path === 'string' && t.path.trim() !== ''
    : t.kind === 'tcp' && typeof t.host === 'string' && t.host !== '' && Number.isInteger(t.port) && t.port >= 1 && t.port <= 65535;
}

/** What the CLI does next with a config it accepted: resolve the default target and a --target, and the directories. */
function checkConsumers(config: RelupConfig, given: string | undefined): void {
  const loaded: LoadedConfig = { config, baseDir: '/work/project', file: `/work/project/${CONFIG_FILE}` };
  for (const arg of [undefined, given]) {
    let resolved;
    try {
      resolved = resolveTarget(loaded, arg);
    } catch (e) {
      if (e instanceof UserError) continue;
      throw new Error(`resolveTarget(${JSON.stringify(arg)}) threw ${String(e)}`);
    }
    if (!validTarget(resolved.target)) throw new Error(`resolveTarget(${JSON.stringify(arg)}) gave a target that cannot be reached: ${JSON.stringify(resolved.target)}`);
  }
  for (const key of ['releases', 'appups'] as const) {
    if (typeof resolveDir('/work/project', loaded, undefined, key) !== 'string') throw new Error(`resolveDir(${key}) is not a path`);
  }
}

interface ConfigCase {
  doc: Mutant;
  given: string;
}

const configCase: fc.Arbitrary<ConfigCase> = fc.record({
  doc: mutants({ text: SEED_TEXT, value: SEED_VALUE }, { serialisers: ['yaml', 'yaml', 'yaml-flow', 'json'], tokens: YAML_TOKENS, keys: keysOf(SEED_VALUE), share: true }),
  // --target values: configured names, names that are not, paths, host:port, prototype names.
  given: fc.constantFrom('local', 'prod', 'staging', 'run/demo.sock', 'demo.sock', '127.0.0.1:7070', '[::1]:7070', 'host:0', 'host:99999', '', ' ', 'constructor', 'toString', '__proto__', 'hasOwnProperty'),
});

function checkConfig(c: ConfigCase): void {
  const text = lenient(c.doc.bytes);
  const result = noThrow('parse + validate of relup.config.yaml', () => parseConfig(text, CONFIG_FILE));
  checkChecked(result, RULES(text));
  if (result.value !== undefined) checkConsumers(result.value, c.given);
}

describe('fuzz: config file', () => {
  it(
    'relup.config.yaml: mutants never throw, every diagnostic is coded and located; an accepted config resolves to reachable targets or a UserError',
    () => {
      fuzz(summary, 'relup.config.yaml', 'mutants, parse + validate', configCase, checkConfig, { numRuns: runs(10_000), seed: 0xc0f16 });
    },
    timeoutFor(120_000),
  );

  describe('through loadConfig on real files', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'relup-fuzz-config-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it(
      'loadConfig resolves or throws a ConfigError with coded, located diagnostics, exactly as the text path says',
      async () => {
        const arb = mutants({ text: SEED_TEXT, value: SEED_VALUE }, { serialisers: ['yaml', 'yaml-flow'], tokens: YAML_TOKENS, keys: keysOf(SEED_VALUE), share: true });
        await fuzzAsync(
          summary,
          'relup.config.yaml',
          'mutants through loadConfig (files)',
          arb,
          async (doc) => {
            await writeFile(join(dir, CONFIG_FILE), doc.bytes);
            let diagnostics: Diagnostic[] | undefined;
            try {
              await loadConfig(dir);
            } catch (e) {
              if (!(e instanceof ConfigError)) throw new Error(`loadConfig threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not a ConfigError`);
              diagnostics = e.diagnostics;
            }
            const text = lenient(doc.bytes);
            for (const d of diagnostics ?? []) checkDiagnostic(d, RULES(text));
            const expected = noThrow('parse + validate of relup.config.yaml', () => parseConfig(text, CONFIG_FILE));
            if ((diagnostics === undefined) !== (expected.value !== undefined)) throw new Error('loadConfig and the text path disagree');
            if (diagnostics !== undefined && diagnostics.length === 0) throw new Error('a ConfigError without diagnostics');
            return 1;
          },
          { numRuns: runs(300), seed: 0xc0f17 },
        );
      },
      timeoutFor(30_000),
    );
  });
});
