/**
 * Connections to the farm's Redis. The URL is redis://[user:password@]host:port[/db] (rediss:// for
 * TLS); the password is Redis AUTH and should always be set, with Redis bound to loopback or a
 * private network. ioredis reconnects by itself after a Redis restart; BullMQ requires
 * maxRetriesPerRequest: null, so that commands wait for the reconnection instead of failing.
 */
import { Redis } from 'ioredis';
import { fail } from '../../ir/errors.ts';

/** The URL with its password masked, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unreadable URL>';
  }
}

/** One line when `url` is not a Redis URL. */
export function checkFarmUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    fail(`cannot read the farm URL '${url.slice(0, 60)}' (expected redis://[:password@]host:port, e.g. redis://:secret@127.0.0.1:6379)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    fail(`the farm URL must start with redis:// or rediss://, got '${redactUrl(url).slice(0, 60)}'`);
  }
  if (!u.hostname) fail(`the farm URL '${redactUrl(url)}' names no host (expected e.g. redis://:secret@127.0.0.1:6379)`);
  return url;
}

/** Waits between reconnection attempts: quick at first, then every 2 s for as long as it takes. */
function retryDelay(attempt: number): number {
  return Math.min(100 * attempt, 2000);
}

/** A connection for BullMQ (queues, workers, queue events) and the farm's own keys. */
export function farmConnection(url: string): Redis {
  const redis = new Redis(checkFarmUrl(url), { maxRetriesPerRequest: null, retryStrategy: retryDelay });
  // while Redis is away every reconnection attempt is an 'error' event: ioredis prints those it
  // finds no listener for; the owners of a connection add their own listener to report them
  redis.on('error', () => {});
  return redis;
}
