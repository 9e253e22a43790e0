export * from './metrics.js';
export * from './evaluate.js';
export * from './gates.js';
