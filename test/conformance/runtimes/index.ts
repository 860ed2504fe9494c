import type { ConformanceRuntime } from '../harness.js';
import { erlangRuntime } from './erlang.js';
import { luaRuntime } from './lua.js';
import { nodeRuntime } from './node.js';

/** Every runtime the conformance suite runs against (see harness.ts: how a runtime joins). */
export const RUNTIMES: ConformanceRuntime[] = [nodeRuntime, erlangRuntime, luaRuntime];
