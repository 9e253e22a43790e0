// The inference server: see server.ts (HTTP API), batcher.ts (dynamic batching), deployment.ts (sessions and
// backbone + heads), registry.ts (where models come from), cluster.ts (workers), split.ts (`edgefit split`).
export * from './batcher.js';
export * from './cluster.js';
export * from './deployment.js';
export * from './errors.js';
export * from './load.js';
export * from './metrics.js';
export * from './registry.js';
export * from './server.js';
export * from './tensor.js';
export * from './split.js';
