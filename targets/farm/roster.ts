/**
 * Which workers are alive, and for which keys: each worker keeps a heartbeat entry in Redis that
 * expires unless renewed (a killed worker drops out within HEARTBEAT_TTL_MS). Callers read it to
 * fail with one line when no worker serves their key, instead of waiting forever.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';

const PREFIX = 'looptune:farm:worker:';
export const HEARTBEAT_MS = 2000;
export const HEARTBEAT_TTL_MS = 3 * HEARTBEAT_MS;

const EntrySchema = z.object({
  name: z.string(),
  hostname: z.string(),
  pid: z.number().int(),
  keys: z.array(z.string()),
  since: z.string(),
  served: z.number().int().nonnegative(),
});

export type RosterEntry = z.infer<typeof EntrySchema>;

/** Writes (and renews) a worker's entry. */
export async function heartbeat(redis: Redis, entry: RosterEntry): Promise<void> {
  await redis.set(`${PREFIX}${entry.name}`, JSON.stringify(entry), 'PX', HEARTBEAT_TTL_MS);
}

/** Removes a worker's entry (a clean shutdown). */
export async function leave(redis: Redis, name: string): Promise<void> {
  await redis.del(`${PREFIX}${name}`);
}

/** The live workers; entries that are not ours (or torn) are skipped. */
export async function liveWorkers(redis: Redis): Promise<RosterEntry[]> {
  const names: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 200);
    cursor = next;
    names.push(...batch);
  } while (cursor !== '0');
  if (names.length === 0) return [];
  const values = await redis.mget(...names);
  const out: RosterEntry[] = [];
  for (const v of values) {
    if (v === null) continue;
    try {
      const parsed = EntrySchema.safeParse(JSON.parse(v));
      if (parsed.success) out.push(parsed.data);
    } catch {
      // not JSON: someone else's key under our prefix
    }
  }
  return out;
}
