export * from './metrics.js';
export * from './evaluate.js';
