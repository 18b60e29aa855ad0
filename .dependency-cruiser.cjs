/**
 * Import rules from docs/ARCHITECTURE.md: cli -> prune -> {ext, initramfs, modules} -> binary.
 * ext, initramfs and modules never import each other; only src/image touches node:fs.
 */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'engines-are-independent',
      comment: 'ext, initramfs and modules never import each other',
      severity: 'error',
      from: { path: '^src/(ext|initramfs|modules)/' },
      to: { path: '^src/(ext|initramfs|modules)/', pathNot: '^src/$1/' },
    },
    {
      name: 'engines-not-upward',
      severity: 'error',
      from: { path: '^src/(binary|image|ext|initramfs|modules)/' },
      to: { path: '^src/(prune|cli)/' },
    },
    {
      name: 'prune-not-cli',
      severity: 'error',
      from: { path: '^src/prune/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'binary-is-a-leaf',
      severity: 'error',
      from: { path: '^src/binary/' },
      to: { path: '^src/(image|ext|initramfs|modules|prune|cli)/' },
    },
    {
      name: 'only-image-and-cli-touch-fs',
      comment: 'engines receive a BlockDevice or streams; only src/image (and the CLI front end) open files',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(image|cli)/' },
      to: { path: '^(node:)?fs(/promises)?$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
