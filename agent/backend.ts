/**
 * TensorFlow.js backend selection, shared by the cost model and the PPO agent.
 *
 * Order: 'tensorflow' (tfjs-node, an optionalDependency: absent where libtensorflow could not be
 * downloaded), then 'wasm' (@tensorflow/tfjs-backend-wasm: SIMD, no threads; about 4x faster than
 * 'cpu' for small MLPs), then 'cpu' (pure JS, always there). The choice is made once per process
 * and logged once (to stderr, so that JSON on stdout stays clean); `LOOPTUNE_TF_BACKEND=cpu|wasm|tensorflow`
 * forces one (falling back down the list when it cannot load).
 *
 * Import `tf` from this module's re-export or from '@tensorflow/tfjs': they are the same instance.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

let chosen: Promise<BackendName> | undefined;
let quiet = false;

/** Silences the one-line log (tests). */
export function setBackendLogging(on: boolean): void {
  quiet = !on;
}

async function tryNode(): Promise<boolean> {
  try {
    // a variable specifier: the package is optional, so the type checker must not require it
    const name = '@tensorflow/tfjs-node';
    await import(name);
    return await tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

/**
 * The wasm backend's emscripten glue installs process handlers that rethrow any uncaught error,
 * which makes Node print the module's 39 KB minified source line and exit with code 7. Handlers
 * it adds while loading are removed again, so errors stay the application's to report.
 */
async function withoutAddedProcessHandlers<T>(load: () => Promise<T>): Promise<T> {
  const beforeErrors = new Set(process.listeners('uncaughtException'));
  const beforeRejections = new Set(process.listeners('unhandledRejection'));
  try {
    return await load();
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!beforeErrors.has(l)) process.removeListener('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!beforeRejections.has(l)) process.removeListener('unhandledRejection', l);
  }
}

async function tryWasm(): Promise<boolean> {
  try {
    return await withoutAddedProcessHandlers(async () => {
      await import('@tensorflow/tfjs-backend-wasm');
      const ok = await tf.setBackend('wasm');
      await tf.ready();
      return ok;
    });
  } catch {
    return false;
  }
}

async function choose(): Promise<BackendName> {
  const forced = process.env.LOOPTUNE_TF_BACKEND;
  const order: BackendName[] = ['tensorflow', 'wasm', 'cpu'];
  const start = forced && (order as string[]).includes(forced) ? order.indexOf(forced as BackendName) : 0;
  let name: BackendName = 'cpu';
  for (const b of order.slice(start)) {
    if (b === 'tensorflow' && (await tryNode())) { name = b; break; }
    if (b === 'wasm' && (await tryWasm())) { name = b; break; }
    if (b === 'cpu') {
      await tf.setBackend('cpu');
      name = 'cpu';
      break;
    }
  }
  await tf.ready();
  if (!quiet) process.stderr.write(`looptune: TensorFlow.js backend '${name}'${forced ? ` (LOOPTUNE_TF_BACKEND=${forced})` : ''}\n`);
  return name;
}

/** Selects the backend (once per process) and returns its name. */
export function initBackend(): Promise<BackendName> {
  chosen ??= choose();
  return chosen;
}
