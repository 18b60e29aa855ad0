// The public library API: re-exports only.
export * from './errors.js';
export * from './image/blockdev.js';
