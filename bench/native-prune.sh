#!/usr/bin/env bash
# native-prune.sh IMG USED — the benchmark's competitor: prune unused kernel modules from a VM disk
# image ROOTLESS with the native tools, the way a careful person would script it (no loop devices,
# no mount, no root). It does the same job as `ulfs-offline prune --used USED IMG`:
#
#   1. find the root partition (sfdisk -d) and the kernel version (the capture's "# kernel:" line,
#      else the only directory in /usr/lib/modules)
#   2. keep set = used names + modules.dep closure + softdeps (pre:/post:, resolved through
#      modules.alias when they name an alias), computed with awk
#   3. rootfs: one `debugfs -w -f cmds` session deletes every other module file and the directories
#      left empty; the kept modules plus depmod's inputs are dumped, `depmod -b` runs on them and the
#      index files are written back (rm + write)
#   4. initramfs (/boot/initrd.img-VER): dump, decompress (gzip/zstd/xz/lz4 by magic), `cpio -idm`,
#      rm the modules not kept, `depmod -b`, `find | cpio -o -H newc -R 0:0 | gzip -n -9` (or the same
#      compressor it had), write back with debugfs (rm + write)
#   5. zerofree 'IMG?offset=N', then e2fsck -fn
#
# Each phase is timed; the table goes to stderr. Limits: a single compressed initramfs archive (no
# early uncompressed cpio in front), one root partition (type 83 or Linux filesystem GUID), /boot
# inside the root filesystem.
set -euo pipefail
export PATH="/usr/sbin:/sbin:$PATH"
export LC_ALL=C

if [ $# -ne 2 ]; then
  echo "usage: $0 IMAGE USED-MODULES-FILE" >&2
  exit 2
fi
IMG=$1
USED=$2
[ -f "$IMG" ] || { echo "no such image: $IMG" >&2; exit 2; }
[ -f "$USED" ] || { echo "no such usage list: $USED" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/native-prune.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

PHASES=()
T0=$(date +%s.%N)
TLAST=$T0
phase() { # phase NAME: record the time since the previous mark
  local now
  now=$(date +%s.%N)
  PHASES+=("$1 $(awk -v a="$TLAST" -v b="$now" 'BEGIN { printf "%.2f", b - a }')")
  TLAST=$now
}

# --- 1. partition and kernel version ------------------------------------------------------------
START=$(sfdisk -d "$IMG" | awk -F'[=,]' '/start=/ && (/type=83/ || /type=0FC63DAF-8483-4772-8E79-3D69D8477DE4/) {
  gsub(/ /, "", $2); print $2; exit }')
[ -n "$START" ] || { echo "no Linux partition in $IMG" >&2; exit 1; }
OFF=$((START * 512))
DEV="$IMG?offset=$OFF"
dfs() { debugfs "$@" "$DEV" 2>/dev/null; }

KVER=$(awk '/^# *kernel:/ { print $3; exit }' "$USED" | tr -d '\r')
if dfs -R 'stat /usr/lib/modules' | grep -q 'Type: directory'; then MODBASE=/usr/lib/modules; else MODBASE=/lib/modules; fi
if [ -z "$KVER" ]; then
  KVER=$(dfs -R "ls -p $MODBASE" | awk -F/ '$6 ~ /^[0-9]/ { print $6; exit }')
fi
MODDIR="$MODBASE/$KVER"
dfs -R "stat $MODDIR" | grep -q 'Type: directory' || { echo "no $MODDIR in the image" >&2; exit 1; }
phase locate

# --- 2. keep set ----------------------------------------------------------------------------------
mkdir -p "$TMP/idx"
for f in modules.dep modules.softdep modules.alias modules.builtin; do
  dfs -R "dump $MODDIR/$f $TMP/idx/$f"
  [ -f "$TMP/idx/$f" ] || : >"$TMP/idx/$f"
done
[ -s "$TMP/idx/modules.dep" ] || { echo "empty modules.dep in the image" >&2; exit 1; }

awk '
function modname(p) { sub(/.*\//, "", p); sub(/\.ko(\.(gz|xz|zst))?$/, "", p); gsub(/-/, "_", p); return p }
function add(n) { if (n in keep) return; keep[n] = 1; q[++qn] = n }
function addtarget(t,   k, a, i) {          # a softdep target: a module name or an alias
  if (modname(t) in path) { add(modname(t)); return }
  if (t in alias) { k = split(alias[t], a, " "); for (i = 1; i <= k; i++) add(a[i]) }
}
FILENAME == DEPF { i = index($0, ":"); p = substr($0, 1, i - 1); n = modname(p); path[n] = p; deps[n] = substr($0, i + 1); next }
FILENAME == SOFTF && $1 == "softdep" { n = modname($2); for (i = 3; i <= NF; i++) if ($i != "pre:" && $i != "post:") soft[n] = soft[n] " " $i; next }
FILENAME == ALIASF && $1 == "alias" { alias[$2] = alias[$2] " " $3; next }
FILENAME == BUILTINF { builtin[modname($0)] = 1; next }
FILENAME == USEDF {
  sub(/\r$/, "")
  if ($0 ~ /^[ \t]*(#|$)/ || $1 == "Module") next
  if ($1 == "(builtin)") next
  n = modname($1); listed++
  if (n in path) add(n)
  else if (n in builtin) nbuiltin++
  else { unknown++; print "native-prune: unknown module " n > "/dev/stderr" }
}
END {
  for (i = 1; i <= qn; i++) {
    n = q[i]
    k = split(deps[n], d, " "); for (j = 1; j <= k; j++) add(modname(d[j]))
    k = split(soft[n], s, " "); for (j = 1; j <= k; j++) addtarget(s[j])
  }
  for (n in keep) print path[n] > KEEP
  for (n in path) if (!(n in keep)) print path[n] > DROP
  printf "used: %d listed, %d builtin, %d unknown; keep %d modules\n", listed, nbuiltin, unknown, qn > "/dev/stderr"
  if (qn == 0) exit 1
}' KEEP="$TMP/keep.txt" DROP="$TMP/drop.txt" DEPF="$TMP/idx/modules.dep" SOFTF="$TMP/idx/modules.softdep" \
  ALIASF="$TMP/idx/modules.alias" BUILTINF="$TMP/idx/modules.builtin" USEDF="$USED" \
  "$TMP/idx/modules.dep" "$TMP/idx/modules.softdep" "$TMP/idx/modules.alias" "$TMP/idx/modules.builtin" "$USED"
touch "$TMP/keep.txt" "$TMP/drop.txt"
sort -o "$TMP/keep.txt" "$TMP/keep.txt"
sort -o "$TMP/drop.txt" "$TMP/drop.txt"
phase keepset

# --- 3. rootfs: delete, then rebuild the indexes from the kept modules --------------------------
# Directories that held only dropped modules, deepest first (debugfs refuses a non-empty rmdir).
awk -v keepf="$TMP/keep.txt" '
BEGIN { while ((getline p < keepf) > 0) { while (sub(/\/[^\/]*$/, "", p)) kept[p] = 1 } }
{ p = $0; while (sub(/\/[^\/]*$/, "", p)) if (!(p in kept)) gone[p] = 1 }
END { for (d in gone) { n = gsub(/\//, "/", d); print n "\t" d } }' "$TMP/drop.txt" |
  sort -k1,1nr -k2 | cut -f2 >"$TMP/dirs.txt"
{
  sed "s|^|rm $MODDIR/|" "$TMP/drop.txt"
  sed "s|^|rmdir $MODDIR/|" "$TMP/dirs.txt"
} >"$TMP/rootfs.cmds"
debugfs -w -f "$TMP/rootfs.cmds" "$DEV" >/dev/null 2>"$TMP/rootfs.err" || true
if grep -v '^debugfs ' "$TMP/rootfs.err" | grep -q .; then
  echo "native-prune: debugfs reported (rootfs delete):" >&2
  grep -v '^debugfs ' "$TMP/rootfs.err" | head -n 5 >&2
fi
phase rootfs-delete

R="$TMP/rootfs"
mkdir -p "$R/lib/modules/$KVER"
{
  for f in modules.order modules.builtin modules.builtin.modinfo; do
    echo "dump $MODDIR/$f $R/lib/modules/$KVER/$f"
  done
  while read -r p; do echo "dump $MODDIR/$p $R/lib/modules/$KVER/$p"; done <"$TMP/keep.txt"
} >"$TMP/dump.cmds"
sed 's|/[^/]*$||' "$TMP/keep.txt" | sort -u | sed "s|^|$R/lib/modules/$KVER/|" | xargs -r mkdir -p
debugfs -f "$TMP/dump.cmds" "$DEV" >/dev/null 2>&1
depmod -b "$R" "$KVER"
INDEXES=""
for f in "$R/lib/modules/$KVER"/modules.*; do
  b=${f##*/}
  case $b in modules.order | modules.builtin | modules.builtin.modinfo) continue ;; esac
  INDEXES="$INDEXES $b"
done
{
  echo "cd $MODDIR"
  for b in $INDEXES; do
    echo "rm $b"
    echo "write $R/lib/modules/$KVER/$b $b"
  done
} >"$TMP/index.cmds"
debugfs -w -f "$TMP/index.cmds" "$DEV" >/dev/null 2>&1
phase rootfs-depmod

# --- 4. initramfs ---------------------------------------------------------------------------------
INITRD="/boot/initrd.img-$KVER"
if dfs -R "stat $INITRD" | grep -q 'Type: regular'; then
  dfs -R "dump $INITRD $TMP/initrd.orig"
  magic=$(od -An -tx1 -N4 "$TMP/initrd.orig" | tr -d ' \n')
  case $magic in
    1f8b*) DEC="gzip -dc" ENC="gzip -n -9" ;;
    28b52ffd) DEC="zstd -dc -q" ENC="zstd -q -19 -T0" ;;
    fd377a58) DEC="xz -dc" ENC="xz --check=crc32 -T0" ;;
    02214c18) DEC="lz4 -dc" ENC="lz4 -l -9 -q" ;;
    *) echo "native-prune: unsupported initramfs layout (magic $magic)" >&2; exit 1 ;;
  esac
  X="$TMP/initrd"
  mkdir -p "$X"
  (cd "$X" && $DEC "$TMP/initrd.orig" | cpio -idm --quiet --no-absolute-filenames)
  phase initramfs-unpack

  IMODS="$X/usr/lib/modules/$KVER"
  [ -d "$IMODS" ] || IMODS="$X/lib/modules/$KVER"
  (cd "$IMODS" && find . -name '*.ko*' | sed 's|^\./||') | sort >"$TMP/initrd-mods.txt"
  awk -v keepf="$TMP/keep.txt" '
    function modname(p) { sub(/.*\//, "", p); sub(/\.ko(\.(gz|xz|zst))?$/, "", p); gsub(/-/, "_", p); return p }
    BEGIN { while ((getline p < keepf) > 0) keep[modname(p)] = 1 }
    !(modname($0) in keep)' "$TMP/initrd-mods.txt" >"$TMP/initrd-drop.txt"
  (cd "$IMODS" && xargs -r rm -f <"$TMP/initrd-drop.txt")
  [ -d "$IMODS/kernel" ] && find "$IMODS/kernel" -depth -type d -empty -delete
  depmod -b "$X" "$KVER"
  (cd "$X" && find . | sort | cpio -o -H newc -R 0:0 --quiet | $ENC >"$TMP/initrd.new")
  phase initramfs-repack

  {
    echo "cd /boot"
    echo "rm initrd.img-$KVER"
    echo "write $TMP/initrd.new initrd.img-$KVER"
  } >"$TMP/initrd.cmds"
  debugfs -w -f "$TMP/initrd.cmds" "$DEV" >/dev/null 2>&1
  echo "initramfs: $(stat -c %s "$TMP/initrd.orig") -> $(stat -c %s "$TMP/initrd.new") bytes," \
    "$(wc -l <"$TMP/initrd-mods.txt") -> $(($(wc -l <"$TMP/initrd-mods.txt") - $(wc -l <"$TMP/initrd-drop.txt"))) modules" >&2
  phase initramfs-write
else
  echo "native-prune: no $INITRD, initramfs left alone" >&2
fi

# --- 5. zero free space, check --------------------------------------------------------------------
zerofree "$DEV"
phase zerofree
e2fsck -fn "$DEV" >"$TMP/fsck.txt" 2>&1 || { cat "$TMP/fsck.txt" >&2; echo "native-prune: e2fsck NOT clean" >&2; exit 1; }
phase e2fsck

echo "rootfs: removed $(wc -l <"$TMP/drop.txt") module files and $(wc -l <"$TMP/dirs.txt") dirs, kept $(wc -l <"$TMP/keep.txt")" >&2
{
  for p in "${PHASES[@]}"; do printf '%-18s %8s s\n' ${p}; done
  printf '%-18s %8s s\n' total "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
} >&2
