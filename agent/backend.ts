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

async function tryWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return await tf.setBackend('wasm');
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
