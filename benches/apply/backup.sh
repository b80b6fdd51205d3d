#!/usr/bin/env bash
# Backup and rollback benchmarks for `plan apply` (issue 5; figures in
# docs/performance.md, section "Apply"). Starts its own throwaway cluster
# WITH fsync on, loads a pgbench database, and times, in one run:
#   a. a snapshot (CREATE DATABASE ... STRATEGY FILE_COPY, as the runner
#      takes it) against `cp -r` of the database's folder + fsync of the copy;
#   b. a rollback without its proof (block connections, terminate sessions,
#      both renames in one transaction, re-allow), at SCALE and BIG_SCALE;
#   c. snapshot + rollback against pg_dump -Fc + pg_restore into a new db;
#   d. the throughput of plan-runner's fingerprint (the proof's reading).
# Every timed operation is preceded by an untimed CHECKPOINT, so none pays
# for the dirty buffers of the one before; copies are dropped (untimed)
# between repetitions; the two sides of a comparison alternate their order.
#
# Usage: benches/apply/backup.sh
# Settings (environment): SCALE=50 REPS=5 ROLLBACK_REPS=11 BIG_SCALE=200
#   BIG_LIMIT=900 (seconds allowed for `pgbench -i` at BIG_SCALE before
#   falling back to FALLBACK_SCALE=100; BIG_SCALE=0 skips it), SKIP_BUILD=1.
# Needs about 3 GB free at scale 50 and 12 GB at scale 200.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

SCALE=${SCALE:-50}
REPS=${REPS:-5}
ROLLBACK_REPS=${ROLLBACK_REPS:-11}
BIG_SCALE=${BIG_SCALE:-200}
BIG_LIMIT=${BIG_LIMIT:-900}
FALLBACK_SCALE=${FALLBACK_SCALE:-100}

work=$(mktemp -d "${TMPDIR:-/tmp}/apply-bench.XXXXXX")
cleanup() {
  stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_release
start_cluster # fsync on: the default of examples/bench_cluster.rs

echo "== machine"
machine
echo "cluster:     fsync=$(q -Atc 'show fsync' postgres), synchronous_commit=$(q -Atc 'show synchronous_commit' postgres), full_page_writes=$(q -Atc 'show full_page_writes' postgres), shared_buffers=$(q -Atc 'show shared_buffers' postgres)"
echo "repetitions: $REPS (rollback: $ROLLBACK_REPS)"

# load_pgbench DB SCALE [LIMIT]: pgbench -i; fails if it takes over LIMIT s.
load_pgbench() {
  local started
  q -c "create database $1" postgres
  started=$(now)
  if ! timeout "${3:-0}" pgbench -i -q -s "$2" "$1" >"$work/pgbench-$1.log" 2>&1; then
    echo "pgbench -i -s $2 did not finish (limit ${3:-none} s): $(tail -n 1 "$work/pgbench-$1.log")"
    q -c "drop database if exists $1 with (force)" postgres
    return 1
  fi
  echo "pgbench -i -s $2: $(elapsed "$started") s, $(q -Atc "select pg_size_pretty(pg_database_size('$1'))" postgres)"
}

checkpoint() { q -c checkpoint postgres; }

# show LABEL FILE: "LABEL: median M s (min A, max B, n N)".
show() {
  local s
  read -r -a s < <(stats <"$2")
  printf '%-58s median %9.4f s  (min %.4f, max %.4f, n %d)\n' "$1" "${s[0]}" "${s[1]}" "${s[2]}" "${s[3]}"
  declare -g "median_$(basename "$2" .t)=${s[0]}"
}

# The rollback without its proof, as src/exec/backup.rs `restore` does it
# for a snapshot: block new connections, end the sessions (none here), both
# renames in one transaction, connections allowed again.
rollback_sql() {
  cat <<SQL
alter database $1 allow_connections false;
select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '$1' and pid <> pg_backend_pid();
begin;
alter database $1 rename to $1_failed;
alter database $1_snap rename to $1;
commit;
alter database $1 allow_connections true;
SQL
}

# rollback_bench DB: ROLLBACK_REPS rollbacks of DB to its snapshot. The
# snapshot is taken once; after each rollback the failed database is renamed
# back into the snapshot's name (untimed), which leaves the same state, so
# every repetition renames the same two databases.
rollback_bench() {
  local db=$1 file=$work/rollback_$1.t wall=$work/rollback_wall_$1.t started
  : >"$file"
  : >"$wall"
  q -c "create database ${db}_snap template $db strategy file_copy" postgres
  q -c "alter database ${db}_snap allow_connections false" postgres
  for ((i = 1; i <= ROLLBACK_REPS; i++)); do
    checkpoint
    started=$(now)
    sql_timed postgres "$(rollback_sql "$db")" >>"$file"
    elapsed "$started" >>"$wall"
    q -c "alter database ${db}_failed rename to ${db}_snap" postgres
  done
  q -c "drop database ${db}_snap" postgres
  show "b. rollback, $db ($(q -Atc "select pg_size_pretty(pg_database_size('$db'))" postgres)), statements" "$file"
  show "   the same, with psql's start and connection" "$wall"
}

echo
echo "== load (load avg $(load))"
load_pgbench db "$SCALE"
size=$(q -Atc "select pg_database_size('db')" postgres)
oid=$(q -Atc "select oid from pg_database where datname = 'db'" postgres)

echo
echo "== a. snapshot vs cp -r + fsync (load avg $(load))"
: >"$work/snapshot.t"
: >"$work/cp.t"
snapshot_once() {
  checkpoint
  sql_timed postgres "create database s template db strategy file_copy" >>"$work/snapshot.t"
  q -c "drop database s" postgres
}
cp_once() {
  local started
  checkpoint
  started=$(now)
  cp -r "$CLUSTER_DATA/base/$oid" "$work/copy"
  # fsync of each copied file and of the folders, as CREATE DATABASE does;
  # a bare `sync` would also flush what other processes of this shared
  # machine have written.
  sync "$work/copy" "$work/copy"/* "$work"
  elapsed "$started" >>"$work/cp.t"
  rm -rf "$work/copy"
}
for ((i = 1; i <= REPS; i++)); do
  if ((i % 2)); then snapshot_once; cp_once; else cp_once; snapshot_once; fi
done
show "a. snapshot: CREATE DATABASE ... STRATEGY FILE_COPY" "$work/snapshot.t"
show "   cp -r base/<oid> + fsync of the copy" "$work/cp.t"
echo "   snapshot / cp: $(ratio "$median_snapshot" "$median_cp") (aim: at most 1.1)"

echo
echo "== d. fingerprint (load avg $(load))"
# As the runner runs it (parallel query allowed), then with parallel query
# off and the backend's CPU time read from /proc: the CPU cost, which does
# not depend on what else the machine runs.
PGDATABASE=db "$release/examples/fingerprint" --times "$REPS" >"$work/fingerprint.out"
PGDATABASE=db "$release/examples/fingerprint" --times "$REPS" --serial --cpu >"$work/fingerprint_serial.out"
awk '{ print $1 }' "$work/fingerprint.out" >"$work/fingerprint.t"
awk '{ print $1 }' "$work/fingerprint_serial.out" >"$work/fingerprint_serial.t"
awk '{ print $4 }' "$work/fingerprint_serial.out" >"$work/fingerprint_cpu.t"
show "d. fingerprint (db::fingerprint::take) of $((size / 1000000)) MB" "$work/fingerprint.t"
echo "   throughput: $(awk -v b="$size" -v s="$median_fingerprint" 'BEGIN { printf "%.0f", b / 1e6 / s }') MB/s (pg_database_size / median; aim: at least 500)"
show "   the same without parallel query" "$work/fingerprint_serial.t"
show "   its server CPU time (one process)" "$work/fingerprint_cpu.t"
echo "   CPU cost: $(awk -v b="$size" -v s="$median_fingerprint_cpu" 'BEGIN { printf "%.0f", b / 1e6 / s }') MB per CPU-second"

echo
echo "== c. snapshot + rollback vs pg_dump -Fc + pg_restore (load avg $(load))"
: >"$work/snaproll.t"
: >"$work/dumprestore.t"
: >"$work/dump.t"
: >"$work/restore.t"
snaproll_once() {
  checkpoint
  sql_timed postgres "create database db_snap template db strategy file_copy;
alter database db_snap allow_connections false;
$(rollback_sql db)" >>"$work/snaproll.t"
  q -c "drop database db_failed" postgres
}
dumprestore_once() {
  local started dumped
  checkpoint
  started=$(now)
  pg_dump -Fc -f "$work/db.dump" db
  dumped=$(now)
  q -c "create database r template template0" postgres
  pg_restore --exit-on-error -d r "$work/db.dump"
  elapsed "$started" >>"$work/dumprestore.t"
  elapsed "$dumped" >>"$work/restore.t"
  awk -v a="$started" -v b="$dumped" 'BEGIN { printf "%.6f\n", b - a }' >>"$work/dump.t"
  q -c "drop database r" postgres
  rm -f "$work/db.dump"
}
for ((i = 1; i <= REPS; i++)); do
  if ((i % 2)); then snaproll_once; dumprestore_once; else dumprestore_once; snaproll_once; fi
done
show "c. snapshot + rollback (no proof)" "$work/snaproll.t"
show "   pg_dump -Fc + pg_restore into a new database" "$work/dumprestore.t"
show "     of which pg_dump -Fc" "$work/dump.t"
show "     of which create database + pg_restore" "$work/restore.t"
echo "   dump+restore / snapshot+rollback: $(ratio "$median_dumprestore" "$median_snaproll") (aim: at least 5)"

echo
echo "== b. rollback (load avg $(load))"
rollback_bench db
q -c "drop database db" postgres

if ((BIG_SCALE > 0)); then
  echo
  echo "== b at scale $BIG_SCALE (load avg $(load), $(df -h --output=avail "$work" | tail -n 1 | tr -d ' ') free)"
  big=$BIG_SCALE
  free_kb=$(df --output=avail -k "$work" | tail -n 1)
  need_kb=$((big * 16 * 1024 * 3 + 2 * 1024 * 1024))
  if ((free_kb < need_kb)); then
    echo "only $((free_kb / 1024)) MB free, $((need_kb / 1024)) MB needed at scale $big: scale $FALLBACK_SCALE instead"
    big=$FALLBACK_SCALE
  elif ! load_pgbench big "$big" "$BIG_LIMIT"; then
    echo "scale $FALLBACK_SCALE instead"
    big=$FALLBACK_SCALE
  fi
  if ((big != BIG_SCALE)); then
    load_pgbench big "$big"
  fi
  rollback_bench big
fi
