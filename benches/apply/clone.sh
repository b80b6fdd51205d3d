#!/usr/bin/env bash
# PostgreSQL 18's `file_copy_method = clone` against the default `copy`
# for the snapshot a backup takes (CREATE DATABASE ... STRATEGY FILE_COPY),
# on an XFS file system with reflinks (a loop-mounted image) and on the
# machine's own disk. On Linux, `clone` copies each file with
# copy_file_range(2): XFS and Btrfs share the blocks (a reflink), other
# file systems copy in the kernel. Figures in docs/performance.md,
# section "Snapshots on PostgreSQL 18: file_copy_method = clone".
#
# Needs root (mount), xfsprogs (mkfs.xfs: `apt-get install xfsprogs`) and
# the PostgreSQL 18 programs of scripts/pg-binaries.
# Usage: benches/apply/clone.sh
# Settings (environment): SCALE=50 REPS=5 IMAGE_GB=8 SKIP_BUILD=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

SCALE=${SCALE:-50}
REPS=${REPS:-5}
IMAGE_GB=${IMAGE_GB:-8}

if [[ $(id -u) != 0 ]]; then
  echo "clone.sh: needs root to mount the XFS image" >&2
  exit 2
fi
command -v mkfs.xfs >/dev/null || {
  echo "clone.sh: needs mkfs.xfs (apt-get install xfsprogs)" >&2
  exit 2
}
bindir=$("$repo/scripts/pg-binaries" 18)
build_release

# The image and its mount point live under target/ (short paths: the
# cluster's socket path must fit 107 bytes).
base=$repo/target/xfs-bench
mkdir -p "$base"
mnt=$base/mnt
image=$base/xfs.img
cleanup() {
  stop_cluster
  mountpoint -q "$mnt" && umount "$mnt"
  rm -f "$image"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_on FOLDER LABEL: a cluster whose data directory is in FOLDER, a
# pgbench database, then REPS snapshots with each method (alternating
# which goes first), each after an untimed CHECKPOINT and dropped after.
run_on() {
  local folder=$1 label=$2 method started t used_before used_after
  work=$(mktemp -d "$folder/clone-bench.XXXXXX")
  chmod 755 "$work"
  TMPDIR=$work start_cluster --bindir "$bindir"
  echo "== $label ($(df --output=fstype "$CLUSTER_DATA" | tail -n 1), data in $CLUSTER_DATA)"
  q -c "create database src" postgres
  started=$(now)
  pgbench -i -q -s "$SCALE" src >"$work/pgbench.log" 2>&1
  echo "pgbench -i -s $SCALE: $(elapsed "$started") s, $(q -Atc "select pg_size_pretty(pg_database_size('src'))" postgres)"
  : >"$work/copy.times"
  : >"$work/clone.times"
  for rep in $(seq 1 "$REPS"); do
    local order=(copy clone)
    ((rep % 2 == 0)) && order=(clone copy)
    for method in "${order[@]}"; do
      q -c checkpoint postgres
      used_before=$(df --output=used -B1 "$CLUSTER_DATA" | tail -n 1)
      t=$(sql_timed postgres "set file_copy_method = $method;
        create database snap template src strategy file_copy;")
      used_after=$(df --output=used -B1 "$CLUSTER_DATA" | tail -n 1)
      echo "$t" >>"$work/$method.times"
      echo "  rep $rep $method: $t s, file system grew by $(((used_after - used_before) / 1048576)) MiB"
      q -c "drop database snap" postgres
    done
  done
  for method in copy clone; do
    read -r median min max n < <(stats <"$work/$method.times")
    echo "$label $method: median $median s (min $min, max $max, n $n)"
  done
  stop_cluster
  rm -rf "$work"
}

echo "== machine"
work=$base machine
echo "postgresql:  $("$bindir/postgres" --version)"

truncate -s "${IMAGE_GB}G" "$image"
mkfs.xfs -q -f -m reflink=1 "$image"
mkdir -p "$mnt"
mount -o loop "$image" "$mnt"
chmod 755 "$mnt"
run_on "$mnt" "xfs reflink=1 (loop image, ${IMAGE_GB} GB)"
run_on "$base" "machine disk"
