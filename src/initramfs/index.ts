// The initramfs engine's public surface: re-exports only.
export * from './compression.js';
export * from './cpio.js';
export { readCpioEntry, type CpioEntry, type EntryLimits } from './archive.js';
export { ArchiveFilter, Later, entryInfo, type CpioEntryInfo, type Decision } from './filter.js';
export * from './initramfs.js';
export { ByteReader, type ByteInput } from './reader.js';
export { LZ4_LEGACY_MAGIC, createLz4LegacyDecoder, createLz4LegacyEncoder } from './lz4legacy.js';
