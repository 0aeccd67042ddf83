export * from './core.ts';
export * from './records.ts';
export * from './evaluator.ts';
export * from './synthetic.ts';
export * from './datasets.ts';
export * from './loopnest-env.ts';
