// The one statistics module (DESIGN.md: used by eval, study and report). Pure functions over plain numbers;
// it imports only the project's PRNG (engine/rng.ts, which loads no tensors), so every folder may use it.
//   describe.ts  — mean, std (sample, n − 1), populationStd (n), quantile/percentile, finite, clamp01
//   bootstrap.ts — the seeded percentile bootstrap (one function, one return shape), its p-value, seeds
//   tests.ts     — normal quantile, Wilson interval, Holm correction, F test of two variances
//   format.ts    — how numbers, intervals, p-values and durations are written

export * from './describe.js';
export * from './bootstrap.js';
export * from './tests.js';
export * from './format.js';
