/**
 * The `require("…")` and `import(…)` calls of a module file, found by a small
 * tokenizer (comments, strings, template literals and regular expressions are
 * skipped), so `relup check` can refuse what the node would refuse when the
 * code runs: a module may require Node.js built-ins only, and vm-compiled code
 * has no dynamic `import()`. Only calls whose argument is a plain string
 * literal are reported for require: a computed name cannot be judged
 * statically.
 */
export interface ModuleCall {
  kind: 'require' | 'import' | 'timer' | 'server' | 'listener';
  /** The required id; the timer function's name; undefined for `import(…)`. */
  id: string | undefined;
  /** 1-based position of the `require` / `import` keyword. */
  line: number;
  column: number;
  /** True when the call is outside any function or block, i.e. it runs when the module loads. */
  topLevel: boolean;
}

type Token = { type: 'name' | 'string' | 'punct' | 'number' | 'regex' | 'template'; text: string; value?: string; offset: number; depth: number };

/**
 * Node's own repeating timer: module code should use the node-owned
 * relup.setInterval. (A plain setTimeout is left alone: it is the usual way to
 * wait a little inside a handler, and ends by itself.)
 */
const PLAIN_TIMERS = new Set(['setInterval']);

const LISTEN_METHODS = new Set(['on', 'once', 'addListener', 'prependListener', 'addEventListener']);
/** Objects that live as long as the Node.js process, whatever version registered on them. */
const LONG_LIVED = new Set(['process', 'globalThis', 'global']);

/** Keywords after which a `/` starts a regular expression rather than a division. */
const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

export function findModuleCalls(source: string): ModuleCall[] {
  const tokens = tokenize(source);
  const starts = lineStarts(source);
  const calls: ModuleCall[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.type !== 'name') continue;
    const prev = tokens[i - 1];
    const owner = tokens[i - 2];
    // net.createServer(…), http.createServer(…), new WebSocketServer(…): a server module code owns (issue 12).
    if (((t.text === 'createServer' || t.text === 'createSecureServer') && prev?.text === '.') || (t.text === 'WebSocketServer' && prev?.text === 'new')) {
      if (tokens[i + 1]?.text !== '(') continue;
      const { line, column } = position(starts, t.offset);
      calls.push({ kind: 'server', id: prev?.text === '.' && owner?.type === 'name' ? `${owner.text}.${t.text}` : `new ${t.text}`, line, column, topLevel: t.depth === 0 });
      continue;
    }
    // process.on(…), globalThis.addEventListener(…): listeners on objects that outlive every version.
    if (LISTEN_METHODS.has(t.text) && prev?.text === '.' && owner?.type === 'name' && LONG_LIVED.has(owner.text) && tokens[i - 3]?.text !== '.') {
      if (tokens[i + 1]?.text !== '(') continue;
      const { line, column } = position(starts, t.offset);
      calls.push({ kind: 'listener', id: `${owner.text}.${t.text}`, line, column, topLevel: t.depth === 0 });
      continue;
    }
    if (t.text !== 'require' && t.text !== 'import' && !PLAIN_TIMERS.has(t.text)) continue;
    // `x.require(…)` or `obj?.import` are properties, not the module's require.
    if (prev !== undefined && prev.type === 'punct' && (prev.text === '.' || prev.text === '?.')) continue;
    if (tokens[i + 1]?.text !== '(') continue;
    const { line, column } = position(starts, t.offset);
    const topLevel = t.depth === 0 && !inArrowBody(tokens, i);
    if (PLAIN_TIMERS.has(t.text)) {
      calls.push({ kind: 'timer', id: t.text, line, column, topLevel });
      continue;
    }
    if (t.text === 'import') {
      calls.push({ kind: 'import', id: undefined, line, column, topLevel });
      continue;
    }
    const arg = tokens[i + 2];
    if (arg?.type !== 'string' || tokens[i + 3]?.text !== ')') continue;
    calls.push({ kind: 'require', id: arg.value, line, column, topLevel });
  }
  return calls;
}

/** `exports.f = () => require('x')`: a brace-less arrow body in the same statement does not run at load. */
function inArrowBody(tokens: readonly Token[], at: number): boolean {
  for (let j = at - 1; j >= 0; j--) {
    const t = tokens[j]!;
    if (t.depth !== 0 || (t.type === 'punct' && (t.text === ';' || t.text === '}'))) return false;
    if (t.type === 'punct' && t.text === '=' && tokens[j + 1]?.text === '>') return true;
  }
  return false;
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  // Depth counts `{` only: a call inside any function body or block is not top level.
  let depth = 0;
  // For template literals: the brace depth at which each open `${` returns to the template.
  const templateStack: number[] = [];
  let i = 0;
  const n = src.length;
  const regexAllowed = (): boolean => {
    const prev = tokens[tokens.length - 1];
    if (prev === undefined) return true;
    if (prev.type === 'name') return REGEX_AFTER_WORD.has(prev.text);
    if (prev.type === 'punct') return !(prev.text === ')' || prev.text === ']' || prev.text === '}');
    return false;
  };
  while (i < n) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff' || c === '\u2028' || c === '\u2029') {
      i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
      continue;
    }
    if (c === '#' && i === 0 && src[1] === '!') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    const start = i;
    if (c === '"' || c === "'") {
      let value = '';
      i++;
      while (i < n && src[i] !== c && src[i] !== '\n') {
        if (src[i] === '\\') {
          value += unescapeOne(src[i + 1] ?? '');
          i += 2;
        } else value += src[i++];
      }
      i++;
      tokens.push({ type: 'string', text: src.slice(start, i), value, offset: start, depth });
      continue;
    }
    if (c === '`' || (c === '}' && templateStack.length > 0 && templateStack[templateStack.length - 1] === depth)) {
      // A template chunk: from ` or from the } closing a ${…} up to the next ` or ${.
      if (c === '}') templateStack.pop();
      i++;
      while (i < n) {
        if (src[i] === '\\') i += 2;
        else if (src[i] === '`') {
          i++;
          break;
        } else if (src[i] === '$' && src[i + 1] === '{') {
          i += 2;
          templateStack.push(depth);
          break;
        } else i++;
      }
      tokens.push({ type: 'template', text: src.slice(start, i), offset: start, depth });
      continue;
    }
    if (c === '/' && regexAllowed()) {
      let inClass = false;
      i++;
      while (i < n && src[i] !== '\n') {
        const d = src[i]!;
        if (d === '\\') i += 2;
        else {
          i++;
          if (d === '[') inClass = true;
          else if (d === ']') inClass = false;
          else if (d === '/' && !inClass) break;
        }
      }
      while (i < n && /[a-z]/i.test(src[i]!)) i++;
      tokens.push({ type: 'regex', text: src.slice(start, i), offset: start, depth });
      continue;
    }
    if (/[A-Za-z_$\u0080-\uffff]/.test(c)) {
      while (i < n && /[\w$\u0080-\uffff]/.test(src[i]!)) i++;
      tokens.push({ type: 'name', text: src.slice(start, i), offset: start, depth });
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      while (i < n && /[\w.]/.test(src[i]!)) i++;
      tokens.push({ type: 'number', text: src.slice(start, i), offset: start, depth });
      continue;
    }
    if (c === '?' && src[i + 1] === '.' && !/[0-9]/.test(src[i + 2] ?? '')) {
      i += 2;
      tokens.push({ type: 'punct', text: '?.', offset: start, depth });
      continue;
    }
    if (c === '{') depth++;
    tokens.push({ type: 'punct', text: c, offset: start, depth: c === '}' ? depth - 1 : depth });
    if (c === '}') depth = Math.max(0, depth - 1);
    i++;
  }
  return tokens;
}

function unescapeOne(c: string): string {
  switch (c) {
    case 'n':
      return '\n';
    case 't':
      return '\t';
    case 'r':
      return '\r';
    default:
      return c;
  }
}

function lineStarts(src: string): number[] {
  const starts = [0];
  for (let i = 0; i < src.length; i++) if (src[i] === '\n') starts.push(i + 1);
  return starts;
}

function position(starts: readonly number[], offset: number): { line: number; column: number } {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - starts[lo]! + 1 };
}
