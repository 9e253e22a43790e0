export * from './dtype.js';
export * from './tensor.js';
export * from './graph.js';
export * from './verify.js';
export * from './emit.js';
export * from './cleanup.js';
