import type { Appup } from '../appup/appup-model.js';
import type { Diagnostic } from '../diagnostics/diagnostic.js';
import type { Release } from '../release/release-model.js';
import type { RelupScript } from '../script/script-schema.js';

export interface PlanInput {
  from: Release;
  to: Release;
  /** Appups by the version they describe. Only the newer release's appup is used. */
  appups: ReadonlyMap<string, Appup>;
}

export interface PlanResult {
  /** Present only when no diagnostic is an error. */
  script: RelupScript | undefined;
  diagnostics: Diagnostic[];
}
