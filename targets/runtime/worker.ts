/**
 * Entry point of a measurement worker process (forked by MeasurementPool; see protocol.ts).
 * Generated code runs here, so a crash or a hang takes down this process, not the caller.
 */
import { executeJob } from './jobs.ts';
import { libc } from './libc.ts';
import type { JobMessage, WorkerMessage } from './protocol.ts';

if (!process.send) {
  throw new Error('targets/runtime/worker.ts is a child-process entry; use MeasurementPool');
}

function send(message: WorkerMessage): void {
  process.send!(message);
}

// The parent is gone (exited or closed the pool): nothing left to do.
process.on('disconnect', () => process.exit(0));

process.on('message', (message: JobMessage) => {
  const { id, job } = message;
  try {
    send({ type: 'result', id, ok: true, value: executeJob(job) });
  } catch (e) {
    send({ type: 'result', id, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
});

// Bind libc now so a broken host fails at start-up, not in the first timed job.
libc();
send({ type: 'ready', pid: process.pid });
