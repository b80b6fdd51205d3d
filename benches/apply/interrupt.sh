#!/usr/bin/env bash
# From SIGTERM to the snapshot swapped back into place (issue 6; figures in
# docs/performance.md, section "Crash safety"). Starts its own throwaway
# cluster WITH fsync on, loads a pgbench database at SCALE, and REPS times:
# runs `plan apply` of a plan that snapshots the database, changes it, then
# sleeps in a step; once the journal shows the sleeping step's process, it
# sends SIGTERM to the runner and waits for it to exit (130). Measured:
#   swap  = from the SIGTERM to the end of the swap: the journal's
#           RollbackStarted time (ms, same clock) minus the moment the
#           signal was sent, plus the report's blocking + terminating +
#           renaming times (the swap itself);
#   proof = the report's proof time, reported apart, as the issue asks.
# The sleeping step dies at once on SIGTERM, so the steps' grace period
# (which a step that ignores SIGTERM would add) is not in the figure.
#
# Usage: benches/apply/interrupt.sh     Settings: SCALE=50 REPS=7 SKIP_BUILD=1
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

SCALE=${SCALE:-50}
REPS=${REPS:-7}
PLAN_BIN=${PLAN_BIN:-$release/plan}

work=$(mktemp -d "${TMPDIR:-/tmp}/interrupt-bench.XXXXXX")
cleanup() {
  if [[ -n ${runner:-} ]]; then kill -9 "$runner" 2>/dev/null || true; fi
  stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_release
start_cluster # fsync on

echo "== machine"
machine
echo "cluster:     fsync=$(q -Atc 'show fsync' postgres)"

q -c "create database bench" postgres
pgbench -i -q -s "$SCALE" bench >"$work/pgbench.log" 2>&1
echo "database:    pgbench scale $SCALE, $(q -Atc "select pg_size_pretty(pg_database_size('bench'))" postgres)"
echo "repetitions: $REPS"

mkdir -p "$work/plan"
cat >"$work/plan/interrupt.plan" <<'PLAN'
plan "interrupt" {
  from = "1.0"
  to   = "2.0"
}

backup before {
  method = "snapshot"
}

sql change {
  after = before
  sql   = "update pgbench_branches set bbalance = bbalance + 1"
}

script long {
  after = change
  run   = "sleep 600"
}
PLAN

# The journal's `at` (RFC 3339, ms, UTC) of the first record of TYPE, as
# seconds since the epoch with 3 decimals.
record_at() {
  local at
  at=$(grep -h "\"event\":\"$2\"" "$1" | head -n 1 | sed 's/^[0-9a-f]* //' |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["at"])')
  date -u -d "$at" '+%s.%3N'
}

: >"$work/swap.t"
: >"$work/proof.t"
for rep in $(seq 1 "$REPS"); do
  state=$work/state-$rep
  q -c checkpoint postgres
  "$PLAN_BIN" apply "$work/plan/interrupt.plan" --database bench --state-dir "$state" \
    --assume-release 1.0 >"$work/run-$rep.out" 2>&1 &
  runner=$!
  journal=
  for _ in $(seq 1 3000); do
    journal=$(ls "$state"/runs/*/journal 2>/dev/null | head -n 1 || true)
    if [[ -n $journal ]] && grep -q '"event":"process_started"' "$journal" 2>/dev/null; then
      break
    fi
    sleep 0.01
  done
  if [[ -z $journal ]] || ! grep -q '"event":"process_started"' "$journal"; then
    echo "the sleeping step never started" >&2
    cat "$work/run-$rep.out" >&2
    exit 1
  fi
  sent=$(now)
  kill -TERM "$runner"
  code=0
  wait "$runner" || code=$?
  runner=
  if [[ $code != 130 ]]; then
    echo "the runner exited $code, not 130" >&2
    cat "$work/run-$rep.out" >&2
    exit 1
  fi
  report=$(ls "$state"/runs/*/report.json)
  read -r blocking terminating renaming proof proved < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["rollback"]
print(r["blocking_s"], r["terminating_s"], r["renaming_s"], r["proof_s"], r["proved"])' "$report")
  if [[ $proved != True ]]; then
    echo "rollback not proved in run $rep" >&2
    exit 1
  fi
  started=$(record_at "$journal" rollback_started)
  awk -v s="$started" -v t="$sent" -v b="$blocking" -v e="$terminating" -v r="$renaming" \
    'BEGIN { printf "%.6f\n", (s - t) + b + e + r }' >>"$work/swap.t"
  echo "$proof" >>"$work/proof.t"
done

read -r -a s < <(stats <"$work/swap.t")
read -r -a p < <(stats <"$work/proof.t")
echo "== SIGTERM to the snapshot swapped back (aim: under 1 s)"
printf 'swap:  median %.4f s (min %.4f, max %.4f, n %d)\n' "${s[@]}"
printf 'proof: median %.4f s (min %.4f, max %.4f, n %d)\n' "${p[@]}"
echo "load avg at end: $(load)"
