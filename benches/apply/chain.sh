#!/usr/bin/env bash
# Chain benchmark (issue 17; figures in docs/performance.md, section
# "Chains"). Starts its own throwaway cluster (fsync on), loads the demo
# fixture (plans/demo/fixture) into a database grown to about SIZE_MB,
# with its filestore grown by FILES_MB, and generates four pair plans
# 1.0 -> 2.0 -> 3.0 -> 4.0 -> 5.0 in one folder (each: stop, a snapshot of
# the database with its filestore, an SQL change, a file added, a check, a
# start). Then it times, once each, on copies of the same database:
#   a. the chain: `plan apply DIR --to 5.0`;
#   b. the same four plans as four separate `plan apply` runs;
#   c. the chain whose fourth hop fails (its last check), rolled back to
#      the start;
#   d. before a, the same chain rehearsed on a's database
#      (`plan rehearse DIR --to 5.0`): the window it predicts, set against
#      the time a then takes;
# and reads from the reports how many backups each took, what they cost
# (copy and fingerprint) and what the rollback cost (rename and proof).
#
# Usage: benches/apply/chain.sh
# Settings (environment): SIZE_MB=1000 FILES_MB=100, SKIP_BUILD=1,
#   BIN_DIR=DIR (use the `plan` and examples in DIR, such as target/debug,
#   instead of the release build).
# Needs about 5 x SIZE_MB of free disk.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

SIZE_MB=${SIZE_MB:-1000}
FILES_MB=${FILES_MB:-100}
if [[ -n ${BIN_DIR:-} ]]; then
  release=$(cd "$BIN_DIR" && pwd)
  SKIP_BUILD=1
fi
plan=$release/plan

work=$(mktemp -d "${TMPDIR:-/tmp}/chain-bench.XXXXXX")
cleanup() {
  stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_release
start_cluster
# The server runs as another account when we are root: the filestore and
# the plans must be readable and writable by the steps, which run as us.
chmod 0755 "$work"

echo "== machine"
machine
echo "binary:      $plan"

fixture=$repo/plans/demo/fixture
echo
echo "== load (load avg $(load))"
started=$(now)
q -c "create database seed" postgres
q -d seed -f "$fixture/01-schema.sql"
q -d seed -f "$fixture/02-data.sql"
# Wide rows in the fixture's own table: about 420 bytes each with the index.
rows=$((SIZE_MB * 1000000 / 420))
q -d seed -c "insert into res_partner (name, email, city, credit, properties)
  select 'Grown ' || i, repeat(md5(i::text), 8) || '@example.com',
         (array['Brussels', 'Liège', 'Gent', 'Namur', 'Leuven'])[1 + i % 5],
         i % 1000, json_build_object('i', i)
  from generate_series(1, $rows) as i"
q -d seed -c "vacuum analyze"
echo "seed: $(q -Atc "select pg_size_pretty(pg_database_size('seed'))" postgres) in $(elapsed "$started") s"
mkdir -p "$work/filestore-seed"
cp -r "$fixture/filestore/demo/." "$work/filestore-seed/"
for ((i = 1; i <= FILES_MB; i++)); do
  d=$work/filestore-seed/$(printf '%02x' $((i % 256)))
  mkdir -p "$d"
  head -c 1000000 /dev/urandom >"$d/grown-$i"
done
echo "filestore: $(du -sh "$work/filestore-seed" | cut -f1)"

# hop_plan K FAIL: the plan K.0 -> K+1.0 for a database whose filestore is
# $work/filestore/<db>; FAIL=1 makes its last check fail.
hop_plan() {
  local k=$1 next=$(($1 + 1)) expect=1
  [[ $2 == 1 ]] && expect=2
  cat <<PLAN
plan "bench hop $k.0 to $next.0" {
  from          = "$k.0"
  to            = "$next.0"
  release_query = "select latest_version from ir_module_module where name = 'base'"
}

var db = target.database

stop server_down {
  run = "true"
}

backup before {
  after  = server_down
  method = "snapshot"
  paths  = ["$work/filestore/\${db}"]
}

sql migrate {
  after   = before
  sql     = "update res_partner set credit = credit + $k where id % 1000 = 0"
  timeout = "30m"
}

script files {
  after   = migrate
  run     = "touch $work/filestore/\${db}/hop-$k"
  timeout = "5m"
}

check settled {
  after  = files
  sql    = "select 1"
  expect = "$expect"
}

start server_up {
  after = settled
  run   = "true"
}

on_failure {
  start old_server_up {
    run = "true"
  }
}
PLAN
}

mkdir -p "$work/chain" "$work/failing" "$work/separate" "$work/filestore"
for k in 1 2 3 4; do
  hop_plan "$k" 0 >"$work/chain/hop-$k.plan"
  hop_plan "$k" 0 >"$work/separate/hop-$k.plan"
  hop_plan "$k" "$([[ $k == 4 ]] && echo 1 || echo 0)" >"$work/failing/hop-$k.plan"
done
chmod -R a+rX "$work"

# fresh DB: a copy of the seed database and of its filestore (untimed).
fresh() {
  q -c "create database $1 template seed strategy file_copy" postgres
  cp -a "$work/filestore-seed" "$work/filestore/$1"
  checkpoint
}
checkpoint() { q -c checkpoint postgres; }
snapshots() { q -Atc "select count(*) from pg_database where datname like '$1\\_pr%'" postgres; }

# backup_cost STATE: how many backups, their time and their fingerprints' from the
# reports under STATE (every hop's, or every run's).
backup_cost() {
  python3 - "$1" <<'PY'
import json, pathlib, sys
# A chain's later hops carry the first hop's backups in their reports:
# count each copy once.
seen = set()
n = copy = fp = 0
for r in sorted(pathlib.Path(sys.argv[1]).rglob("report.json")):
    for b in json.loads(r.read_text()).get("backups", []):
        if b["copy"] in seen: continue
        seen.add(b["copy"]); n += 1; copy += b["seconds"]; fp += b["fingerprint_seconds"]
print(f"{n} backup(s), {copy:.2f} s in backups (copies and fingerprints), of which fingerprints {fp:.2f} s")
PY
}

echo
echo "== d. the chain rehearsed: plan rehearse DIR --to 5.0 on a's database (load avg $(load))"
fresh chaindb
started=$(now)
"$plan" rehearse "$work/chain" --to 5.0 --database chaindb --state-dir "$work/state-d" --format json \
  >"$work/d.json" 2>"$work/d.err" || { tail -n 30 "$work/d.err"; exit 1; }
rehearse_s=$(elapsed "$started")
window_s=$(python3 - "$work/d.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
w, m = r["window"], r["made"]
print(f"{w['seconds']:.1f}", file=sys.stdout)
print(f"rehearsal: {r['outcome']} in {r['seconds']:.1f} s; copy {m['database_bytes'] / 1e6:.0f} MB in {m['database_seconds']:.1f} s, "
      f"files {m['trees_bytes'] / 1e6:.0f} MB in {m['trees_seconds']:.1f} s; window {w['seconds']:.1f} s "
      f"(backups {w['backup_seconds']:.1f} s), rollback {w['rollback_seconds']:.1f} s; disk {r['disk_bytes'] / 1e6:.0f} MB; "
      f"left: {len(r['dropped']['left'])}", file=sys.stderr)
PY
)
echo "total: $rehearse_s s; databases left: $(q -Atc "select count(*) from pg_database where datname like 'chaindb\\_%'" postgres)"

echo
echo "== a. the chain: plan apply DIR --to 5.0 (load avg $(load))"
started=$(now)
"$plan" apply "$work/chain" --to 5.0 --database chaindb --state-dir "$work/state-a" 2>"$work/a.err" \
  || { tail -n 30 "$work/a.err"; exit 1; }
chain_s=$(elapsed "$started")
echo "total: $chain_s s; snapshots left: $(snapshots chaindb); $(backup_cost "$work/state-a")"
echo "window predicted by d / this run: $window_s s / $chain_s s = $(ratio "$window_s" "$chain_s")"
grep -m1 "last rehearsal" "$work/a.err" || { echo "apply did not tell the rehearsal"; exit 1; }
q -c "drop database chaindb" postgres
q -Atc "select datname from pg_database where datname like 'chaindb\\_%'" postgres |
  while read -r d; do q -c "drop database \"$d\"" postgres; done

echo
echo "== b. four separate plan apply runs (load avg $(load))"
fresh sepdb
started=$(now)
for k in 1 2 3 4; do
  "$plan" apply "$work/separate/hop-$k.plan" --database sepdb --state-dir "$work/state-b" 2>"$work/b-$k.err" \
    || { tail -n 30 "$work/b-$k.err"; exit 1; }
done
separate_s=$(elapsed "$started")
echo "total: $separate_s s; snapshots left: $(snapshots sepdb); $(backup_cost "$work/state-b")"
echo "chain / separate: $(ratio "$chain_s" "$separate_s")"
q -Atc "select datname from pg_database where datname like 'sepdb%'" postgres |
  while read -r d; do q -c "drop database \"$d\"" postgres; done

echo
echo "== c. the chain, its fourth hop failing: rolled back to the start (load avg $(load))"
fresh faildb
started=$(now)
code=0
"$plan" apply "$work/failing" --to 5.0 --database faildb --state-dir "$work/state-c" 2>"$work/c.err" || code=$?
fail_s=$(elapsed "$started")
[[ $code == 1 ]] || { echo "expected exit 1, got $code"; tail -n 30 "$work/c.err"; exit 1; }
echo "total: $fail_s s (exit $code); $(backup_cost "$work/state-c")"
python3 - "$work/state-c" <<'PY'
import json, pathlib, sys
r = json.loads(next(pathlib.Path(sys.argv[1]).rglob("hop-4/report.json")).read_text())
rb = r["rollback"]
total = sum(rb[k] for k in ("blocking_s", "terminating_s", "renaming_s", "loading_s", "paths_s", "proof_s"))
print(f"rollback at hop 4: {total:.2f} s (renames {rb['renaming_s']:.3f} s, files {rb['paths_s']:.3f} s, proof {rb['proof_s']:.2f} s), proved: {rb['proved']}")
PY
echo
echo "load avg at the end: $(load)"
