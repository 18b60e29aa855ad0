// The modules engine: usage lists, keep-set planning, kmod index files. Pure (no fs).
export * from './names.js';
export * from './usage-list.js';
export * from './kmod-index.js';
export * from './moddep.js';
export * from './dep-sort.js';
export * from './elf-imports.js';
export * from './indexes.js';
export * from './plan.js';
export * from './text.js';
