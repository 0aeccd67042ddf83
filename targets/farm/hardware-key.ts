/**
 * The hardware key of a farm worker, like TVM's RPC keys: which measurements it may serve. A job is
 * queued under the key its caller wants and only workers of exactly that key take it, so a timing
 * is always of the hardware the caller's records say. The key is the target and the device's host
 * key (Device.host): for CPU targets the CPU model, family/model/stepping, the ISA extensions that
 * change kernel speed, the core count and the thread count (above one); for cuda the GPU's name and
 * driver version. Worker and caller compute it the same way: from an opened Device of the target.
 */
import { createHash } from 'node:crypto';
import { fail } from '../../ir/errors.ts';
import type { Backend, Device } from '../backend.ts';

/** "avx512 on AMD EPYC (AuthenticAMD family 26 ..., 2 cores)" */
export function hardwareKey(target: string, host: string): string {
  return `${target} on ${host}`;
}

/** The key a worker with `device` open for `target` serves. */
export function deviceHardwareKey(target: string, device: Pick<Device, 'host'>): string {
  return hardwareKey(target, device.host);
}

/** The device host a key names (the part after the target). */
export function keyHost(key: string, target: string): string {
  const prefix = `${target} on `;
  if (!key.startsWith(prefix)) fail(`farm key '${key.slice(0, 80)}' is not a key of the ${target} target (expected '${prefix}<host>')`);
  return key.slice(prefix.length);
}

/**
 * The BullMQ queue of a key. BullMQ's queue names may not hold ':' (its key separator) and the keys
 * do, so the queue is named by a digest; the key itself travels in every job and is checked again.
 */
export function queueName(key: string): string {
  return `looptune-measure-${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;
}

/**
 * The key this machine's device of `backend` would serve at `threads`: what a caller on the same
 * kind of machine as its workers asks for. Opening a CPU device starts no process (its measurement
 * workers start with the first job); a target this machine cannot run is one line asking for the key.
 */
export async function localHardwareKey(backend: Backend, threads?: number): Promise<string> {
  let device: Device;
  try {
    device = await backend.open(threads !== undefined && backend.caps.threads ? { threads } : {});
  } catch (e) {
    fail(`cannot compute the farm key of ${backend.name} here (${e instanceof Error ? e.message : String(e)}): name the workers' key as looptune worker prints it (the farm options' key; key: in an experiment file's farm:)`);
  }
  try {
    return deviceHardwareKey(backend.name, device);
  } finally {
    await device.close();
  }
}
