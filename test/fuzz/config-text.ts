import { configKeysAt, configSchema, type RelupConfig } from '../../src/config/config-schema.js';
import { hasErrors, type Checked } from '../../src/diagnostics/diagnostic.js';
import { validateYaml, YamlSource } from '../../src/yaml/yaml-source.js';

/**
 * loadConfig's steps after it has read relup.config.yaml, as a pure function
 * of the text (the same calls in the same order), so the fuzzer need not
 * write a file per case. A `parseConfig(text, file)` exported by
 * src/config/load-config.ts would replace this copy (docs/fuzzing.md).
 */
export function parseConfigText(text: string, file: string): Checked<RelupConfig> {
  const { source, diagnostics } = YamlSource.parse(text, file);
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
  const checked = validateYaml(source, configSchema.nullable(), 'config', configKeysAt);
  if (checked.value === undefined) return { value: undefined, diagnostics: [...diagnostics, ...checked.diagnostics] };
  return { value: checked.value ?? {}, diagnostics: [...diagnostics, ...checked.diagnostics] };
}
