/** The torn-undo-tail test with a full undo at every cut point (≈4,000 undo runs with fsyncs). */
process.env.ULFS_UNDO_EVERY_BYTE = '1';
await import('./undo.roundtrip.test.js');
