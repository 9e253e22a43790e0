export * from './ort.js';
export * from './profile.js';
