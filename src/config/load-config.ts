import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { hasErrors, type Checked } from '../diagnostics/diagnostic.js';
import { suggestion } from '../diagnostics/did-you-mean.js';
import { ConfigError, UserError } from '../errors/errors.js';
import { YamlSource, validateYaml } from '../yaml/yaml-source.js';
import { parseTarget, type Target } from '../client/target.js';
import { CONFIG_FILE, configKeysAt, configSchema, type RelupConfig } from './config-schema.js';

export interface LoadedConfig {
  config: RelupConfig;
  /** Directory paths in the config are relative to this (the config file's folder, or cwd when there is none). */
  baseDir: string;
  file: string | undefined;
}


/** Read `relup.config.yaml` from `cwd` if there is one. Throws ConfigError (with located diagnostics) when it is invalid. */
export async function loadConfig(cwd: string, explicit?: string): Promise<LoadedConfig> {
  const file = explicit === undefined ? join(cwd, CONFIG_FILE) : isAbsolute(explicit) ? explicit : join(cwd, explicit);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && explicit === undefined) return { config: {}, baseDir: cwd, file: undefined };
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`, 'check the path given with --config');
  }
  const parsed = parseConfig(text, explicit ?? CONFIG_FILE);
  if (parsed.value === undefined) throw new ConfigError(parsed.diagnostics);
  return { config: parsed.value, baseDir: dirname(file), file };
}

/** The text of a relup.config.yaml, parsed and validated; never throws for bad input. An empty file is an empty config. */
export function parseConfig(text: string, file: string): Checked<RelupConfig> {
  const { source, diagnostics } = YamlSource.parse(text, file);
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
  const checked = validateYaml(source, configSchema.nullable(), 'config', configKeysAt);
  const all = [...diagnostics, ...checked.diagnostics];
  return checked.value === undefined ? { value: undefined, diagnostics: all } : { value: checked.value ?? {}, diagnostics: all };
}

export interface ResolvedTarget {
  target: Target;
  secretFile?: string;
  secretEnv?: string;
  /** TLS trust: a CA file (absolute) or a certificate fingerprint. */
  tls?: { caFile: string; servername?: string } | { fingerprint: string };
  name?: string;
}

/** `--target` (a path, host:port or a configured name) or the config's default target. */
export function resolveTarget(loaded: LoadedConfig, given: string | undefined): ResolvedTarget {
  const targets = loaded.config.targets ?? {};
  const name = given ?? loaded.config.defaultTarget;
  if (name === undefined) {
    throw new UserError('no target: which node should this talk to?', `pass --target <socket path | host:port | name>, or set defaultTarget in ${CONFIG_FILE}`);
  }
  const configured = Object.hasOwn(targets, name) ? targets[name] : undefined;
  if (configured !== undefined) {
    if ('socket' in configured) {
      const path = isAbsolute(configured.socket) ? configured.socket : join(loaded.baseDir, configured.socket);
      return { target: { kind: 'unix', path }, name };
    }
    return {
      target: { kind: 'tcp', host: configured.host, port: configured.port },
      name,
      ...(configured.secretFile === undefined ? {} : { secretFile: isAbsolute(configured.secretFile) ? configured.secretFile : join(loaded.baseDir, configured.secretFile) }),
      ...(configured.secretEnv === undefined ? {} : { secretEnv: configured.secretEnv }),
      ...(configured.tls === undefined
        ? {}
        : {
            tls:
              'ca' in configured.tls
                ? { caFile: isAbsolute(configured.tls.ca) ? configured.tls.ca : join(loaded.baseDir, configured.tls.ca), ...(configured.tls.servername === undefined ? {} : { servername: configured.tls.servername }) }
                : { fingerprint: configured.tls.fingerprint },
          }),
    };
  }
  if (given === undefined) {
    throw new UserError(`defaultTarget "${name}" is not defined under targets in ${CONFIG_FILE}${suggestion(name, Object.keys(targets))}`, 'add it under targets, or fix defaultTarget');
  }
  if (!/[/:]/.test(name) && !name.endsWith('.sock')) {
    throw new UserError(`unknown target "${name}"${suggestion(name, Object.keys(targets))}`, Object.keys(targets).length > 0 ? `configured targets: ${Object.keys(targets).join(', ')}` : `pass a socket path or host:port, or define targets in ${CONFIG_FILE}`);
  }
  return { target: parseTarget(name) };
}

/** Directory option: the flag, else the config (relative to the config file), else the default name under cwd. */
export function resolveDir(cwd: string, loaded: LoadedConfig, flag: string | undefined, key: 'releases' | 'appups'): string {
  if (flag !== undefined) return isAbsolute(flag) ? flag : join(cwd, flag);
  const fromConfig = loaded.config[key];
  if (fromConfig !== undefined) return isAbsolute(fromConfig) ? fromConfig : join(loaded.baseDir, fromConfig);
  return join(cwd, key);
}
