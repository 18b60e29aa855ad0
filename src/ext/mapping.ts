/**
 * What every block-mapping walker (extent tree, classic block map) produces and needs.
 */

/** A run of logical blocks mapped to consecutive physical blocks. */
export interface Extent {
  logical: number;
  physical: number;
  length: number;
  /** Unwritten (preallocated) extent: reads as zeros. */
  unwritten: boolean;
}

export interface Mapping {
  /** Sorted by logical block, non-overlapping. */
  extents: Extent[];
  /** Tree blocks: extent index/leaf blocks, or IND/DIND/TIND blocks, in walk order. */
  metaBlocks: number[];
}

export interface MapContext {
  blockSize: number;
  firstDataBlock: number;
  blocksCount: number;
  /** Reads one filesystem block (bounds-checked by the caller's implementation). */
  readBlock(block: number): Buffer;
  /** Called on every extent tree block (not the root) for checksum verification. */
  verifyExtentBlock?(block: number, data: Buffer, ino: number): void;
}

/** Appends a block run, merging it into the previous one when contiguous. */
export function pushRun(
  out: Extent[],
  logical: number,
  physical: number,
  length: number,
  unwritten: boolean,
): void {
  const last = out[out.length - 1];
  if (
    last &&
    last.unwritten === unwritten &&
    last.logical + last.length === logical &&
    last.physical + last.length === physical
  ) {
    last.length += length;
  } else {
    out.push({ logical, physical, length, unwritten });
  }
}
