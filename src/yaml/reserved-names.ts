/**
 * Names relup refuses where a name becomes a property key. Every map of names
 * relup builds is a Map or a null-prototype object, and lookups check own
 * properties only; refusing these as well means no layer — including a
 * runtime written in another language, or user code handed the data — can
 * confuse a name with a member of Object.prototype.
 */

/** Refused as a key anywhere in a YAML file: a plain object would take it as its prototype and drop it. */
export const RESERVED_KEY = '__proto__';

/**
 * Refused as the name of a module, a process, a dependency or a target:
 * `__proto__`, `constructor`, `prototype`, and every other member of
 * Object.prototype (`toString`, `hasOwnProperty`, …), which a lookup in a
 * plain object would find without the name being declared.
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype', ...Object.getOwnPropertyNames(Object.prototype)]);

export function isReservedName(name: string): boolean {
  return RESERVED_NAMES.has(name);
}

export const RESERVED_NAME_MESSAGE = `is reserved (${[...RESERVED_NAMES].sort().join(', ')}); choose another name`;
