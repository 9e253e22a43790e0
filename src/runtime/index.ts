export * from './ort.js';
export * from './profile.js';
export * from './latency.js';
