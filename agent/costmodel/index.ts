/**
 * The learned cost model (issue 5): features of the generated program (features.ts), a TF.js
 * ranking + regression model (model.ts), saved as tfjs model.json + weights.bin (io.ts), metrics
 * (metrics.ts), env Evaluators for the 'costmodel' and 'hybrid' reward sources and a predict
 * function for evolution (evaluator.ts), and the train/eval library functions (cli.ts).
 */
export * from './features.ts';
export * from './data.ts';
export * from './io.ts';
export * from './metrics.ts';
export * from './model.ts';
export * from './evaluator.ts';
export * from './cli.ts';
export { initBackend, type BackendName } from '../backend.ts';
