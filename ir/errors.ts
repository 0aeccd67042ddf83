/**
 * Errors a user can cause (bad spec, illegal action, malformed YAML...). The CLI prints their
 * message as one line and exits non-zero; anything else is a bug and keeps its stack trace.
 */
export class LoopTuneError extends Error {
  override name = 'LoopTuneError';
}

export function fail(message: string): never {
  throw new LoopTuneError(message);
}
