export * from './ort.js';
