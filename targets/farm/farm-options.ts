/**
 * How a caller reaches a farm (the CLI's --farm, the experiment file's farm: section). Kept apart
 * from remote-device.ts so that importing the options does not load BullMQ and ioredis.
 */
export interface FarmOptions {
  /** redis://[:password@]host:port */
  url: string;
  /** the hardware key to measure on (default: this machine's, for the target and threads) */
  key?: string;
  /** jobs in flight at once for this key (default DEFAULT_FARM_CONCURRENCY) */
  concurrency?: number;
  /** tries of a job whose worker failed it (default 3) */
  attempts?: number;
  /** seconds a job may take, queueing included, before its measurement fails (default 600) */
  jobTimeoutSeconds?: number;
  /** seconds to wait at open for a live worker of the key (default 15) */
  waitForWorkerSeconds?: number;
}

/** Jobs in flight per key when the options name no concurrency. */
export const DEFAULT_FARM_CONCURRENCY = 8;
