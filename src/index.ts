// The public library API: re-exports only.
export * from './errors.js';
export * from './image/blockdev.js';
export {
  readPartitionTable,
  openPartition,
  findPartition,
  openImage,
  type Partition,
  type PartitionTable,
  type OpenedImage,
} from './image/partitions.js';
export { JournaledDevice } from './image/journaled.js';
export { undo, assertNoUndoLog, undoPath, type UndoResult } from './image/undo.js';
export { lockImage, withLock, type ImageLock } from './image/lock.js';
export { FaultDevice, type FaultPlan } from './image/fault.js';
export { copySparse, type CopyResult } from './image/sparse.js';
export {
  ExtFs,
  type ExtFsOptions,
  type JournalState,
  type Extent,
  type DirEntry,
  type Inode,
  type Stat,
  type Superblock,
  type GroupDesc,
} from './ext/fs.js';
export {
  assertWritable,
  removePaths,
  rewriteFile,
  rewriteFileFromChunks,
  zeroFree,
  checkFs,
  type RemoveOptions,
  type RemoveReport,
  type RewriteReport,
  type ZeroOptions,
  type ZeroReport,
  type CheckReport,
  type CheckFinding,
} from './ext/write/index.js';
export {
  parseUsageList,
  mergeUsageLists,
  normalizeModuleName,
  chooseKernel,
  planModules,
  treeModuleNames,
  rewriteIndexes,
  decodeIndex,
  encodeIndex,
  readElfImports,
  type UsageList,
  type ListFormat,
  type ModuleTree,
  type ModulePlan,
  type KeptModule,
  type PlanInput,
  type RewriteOptions,
  type ModuleImage,
  type IndexEntry,
  type IndexWriteOrder,
} from './modules/index.js';
export { prune, type PruneReport, type PruneOptions } from './prune/prune.js';
export { planPrune, summarizePlan, type PrunePlan } from './prune/plan.js';
export { applyPlan, type ApplyResult } from './prune/apply.js';
export {
  discover,
  pickFilesystem,
  type Discovery,
  type FsEntry,
  type KernelInfo,
  type InitramfsInfo,
} from './prune/discover.js';
export {
  filterInitramfs,
  listInitramfs,
  sniffCompression,
  type FilterOptions,
  type FilterReport,
  type FilterSegmentReport,
  type ListOptions,
  type SegmentInfo,
  type CpioEntryInfo,
  type Decision,
  type Compression,
  type OutputCompression,
} from './initramfs/index.js';
