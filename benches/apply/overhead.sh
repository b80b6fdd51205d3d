#!/usr/bin/env bash
# Per-step overhead of `plan apply` (issue 5; figures in docs/performance.md,
# section "Apply"): a generated plan of STEPS trivial steps (a `stop` then a
# chain of `script`s, each running `true`), applied with the release build
# to a small database, against a bash script running the same STEPS
# commands as processes (`/usr/bin/true`, not bash's builtin: the runner
# starts a process per step). The runner's figure includes everything a
# real run does: lock, release gate, history table, runs table, one log file
# per step, the report. The plan has no backup (W101 allowed in the plan
# block), so no copy is timed. Also the time from the process's start to
# its first step: the birth time of the first step's log file, which the
# runner creates just before it starts the step's process.
#
# The cluster runs with fsync off (a throwaway test cluster): the runner's
# few commits per run (runs table, history) would otherwise pay for the
# disk's flush latency, which is not the runner's overhead.
#
# Usage: benches/apply/overhead.sh
# Settings (environment): STEPS=500 REPS=7 RUN=true (the steps' command)
#   BREAKDOWN=1 (the phases before the first step, under strace) SKIP_BUILD=1
#   PLAN_BIN=target/release/plan (another build, to compare two versions).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

STEPS=${STEPS:-500}
# What each step runs: a name looked up in PATH, as plans usually say.
RUN=${RUN:-true}
PLAN_BIN=${PLAN_BIN:-$release/plan}
REPS=${REPS:-7}

work=$(mktemp -d "${TMPDIR:-/tmp}/apply-overhead.XXXXXX")
cleanup() {
  stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_release
start_cluster --no-fsync

echo "== machine"
machine
echo "cluster:     fsync=$(q -Atc 'show fsync' postgres) (throwaway test cluster)"
echo "steps:       $STEPS, repetitions: $REPS"

true_path=$(type -P true)

# plan N FILE: a plan of N steps, each running `true`.
plan() {
  {
    echo 'plan "overhead" {'
    echo '  # lint: allow(W101)'
    echo '  from = "1.0"'
    echo '  to   = "2.0"'
    echo '}'
    echo
    echo 'stop s1 {'
    echo "  run = \"$RUN\""
    echo '}'
    for ((n = 2; n <= $1; n++)); do
      printf '\nscript s%d {\n  after   = s%d\n  run     = "%s"\n  timeout = "1m"\n}\n' "$n" $((n - 1)) "$RUN"
    done
  } >"$2"
}
mkdir -p "$work/plan" "$work/one"
plan "$STEPS" "$work/plan/overhead.plan"
plan 1 "$work/one/overhead.plan"
"$PLAN_BIN" lint "$work/plan/overhead.plan" >/dev/null

{
  echo '#!/usr/bin/env bash'
  for ((n = 1; n <= STEPS; n++)); do echo "$true_path"; done
} >"$work/steps.sh"

: >"$work/plan.t"
: >"$work/plan_cpu.t"
: >"$work/one_cpu.t"
: >"$work/bash_cpu.t"
: >"$work/one.t"
: >"$work/bash.t"
: >"$work/first.t"
: >"$work/first_one.t"
db=0

# apply PLAN TIMES FIRST: one `plan apply` on a fresh database; appends its
# total time to TIMES and the time to its first step to FIRST.
apply() {
  local started total state log born cpu
  db=$((db + 1))
  state=$work/state-$db
  q -c "create database o$db" postgres
  # A real target has been connected to before: its first connection
  # builds the server's per-database cache file (tens of ms), not the
  # runner's cost.
  q -Atc "select 1" "o$db" >/dev/null
  cpu=$(children_cpu)
  started=$(now)
  if ! "$PLAN_BIN" apply "$1" --database "o$db" --state-dir "$state" \
    --assume-release 1.0 >"$work/apply.out" 2>"$work/apply.err"; then
    cat "$work/apply.err" >&2
    echo "plan apply failed" >&2
    return 1
  fi
  total=$(elapsed "$started")
  echo "$total" >>"$2"
  cpu_since "$cpu" >>"${2%.t}_cpu.t"
  log=$(echo "$state"/runs/*/logs/s1.log)
  born=$(stat -c %.9W "$log")
  awk -v a="$started" -v b="$born" 'BEGIN { printf "%.6f\n", b - a }' >>"$3"
  q -c "drop database o$db" postgres
  rm -rf "$state"
}

run_bash() {
  local started cpu
  cpu=$(children_cpu)
  started=$(now)
  bash "$work/steps.sh"
  elapsed "$started" >>"$work/bash.t"
  cpu_since "$cpu" >>"$work/bash_cpu.t"
}

# The CPU time (user + system, seconds) of this shell's finished children
# and all they waited for: a run's CPU, which other work on the machine
# does not inflate as it does wall time. In ticks of 10 ms.
children_cpu() { awk '{ print ($16 + $17) / 100 }' "/proc/$$/stat"; }
cpu_since() { awk -v a="$1" -v b="$(children_cpu)" 'BEGIN { printf "%.2f\n", b - a }'; }

echo
echo "== runs (load avg $(load))"
# One untimed run of each first: the binary and the scripts in the page cache.
apply "$work/plan/overhead.plan" /dev/null /dev/null
run_bash
for f in plan one bash; do : >"$work/$f.t"; : >"$work/${f}_cpu.t"; done
for ((i = 1; i <= REPS; i++)); do
  if ((i % 2)); then
    apply "$work/plan/overhead.plan" "$work/plan.t" "$work/first.t"
    run_bash
  else
    run_bash
    apply "$work/plan/overhead.plan" "$work/plan.t" "$work/first.t"
  fi
  apply "$work/one/overhead.plan" "$work/one.t" "$work/first_one.t"
done
echo "load avg after: $(load)"

show() {
  local s
  read -r -a s < <(stats <"$2")
  printf '%-52s median %8.4f s  (min %.4f, max %.4f, n %d)\n' "$1" "${s[0]}" "${s[1]}" "${s[2]}" "${s[3]}"
  declare -g "median_$(basename "$2" .t)=${s[0]}"
}
echo
show "plan apply, $STEPS steps" "$work/plan.t"
show "  its CPU time, with its steps' processes" "$work/plan_cpu.t"
show "bash, $STEPS processes" "$work/bash.t"
show "  its CPU time, with its processes" "$work/bash_cpu.t"
show "plan apply, 1 step" "$work/one.t"
show "start to first step ($STEPS-step plan)" "$work/first.t"
show "start to first step (1-step plan)" "$work/first_one.t"
awk -v p="$median_plan" -v b="$median_bash" -v o="$median_one" -v n="$STEPS" -v f="$median_first" 'BEGIN {
  printf "overhead per step: (plan - bash) / %d = %.2f ms (aim: under 2 ms)\n", n, (p - b) / n * 1000
  printf "  bash alone: %.2f ms per step\n", b / n * 1000
  printf "  marginal cost of a step in the runner: (plan %d - plan 1) / %d = %.2f ms, of which bash-equivalent process start %.2f ms\n", n, n - 1, (p - o) / (n - 1) * 1000, b / n * 1000
  printf "start to first step: %.1f ms (aim: under 50 ms)\n", f * 1000
}'
awk -v p="$median_plan_cpu" -v b="$median_bash_cpu" -v n="$STEPS" 'BEGIN {
  printf "CPU overhead per step: (plan CPU - bash CPU) / %d = %.2f ms\n", n, (p - b) / n * 1000
}'

# Where the time to the first step goes: the same 1-step run under strace,
# stopped only at execve, connect and openat (seccomp filter), so the
# phases are cut at the runner's three connections to the server and at the
# first step's log file. strace itself adds a little to each phase.
if [[ ${BREAKDOWN:-1} == 1 ]] && command -v strace >/dev/null; then
  echo
  echo "== time to the first step, by phase (1-step plan under strace, $REPS runs, load avg $(load))"
  for phase in start maintenance lock target; do : >"$work/phase_$phase.t"; done
  for ((i = 1; i <= REPS; i++)); do
    db=$((db + 1))
    q -c "create database o$db" postgres
    q -Atc "select 1" "o$db" >/dev/null
    strace -f --seccomp-bpf -ttt -e trace=execve,connect,openat -o "$work/trace" \
      "$PLAN_BIN" apply "$work/one/overhead.plan" --database "o$db" \
      --state-dir "$work/state-$db" --assume-release 1.0 >/dev/null 2>&1
    awk -v dir="$work" '
      NR == 1 { t0 = $2 }
      /connect\(/ && /\.s\.PGSQL/ { c[++n] = $2 }
      /logs\/s1\.log/ && !lg { lg = $2 }
      END {
        printf "%.3f\n", (c[1] - t0) * 1000 >> (dir "/phase_start.t")
        printf "%.3f\n", (c[2] - c[1]) * 1000 >> (dir "/phase_maintenance.t")
        printf "%.3f\n", (c[3] - c[2]) * 1000 >> (dir "/phase_lock.t")
        printf "%.3f\n", (lg - c[3]) * 1000 >> (dir "/phase_target.t")
      }' "$work/trace"
    q -c "drop database o$db" postgres
  done
  showms() {
    local s
    read -r -a s < <(stats <"$2")
    printf '%-70s median %6.1f ms  (min %.1f, max %.1f)\n' "$1" "${s[0]}" "${s[1]}" "${s[2]}"
  }
  showms "start, read and check the plan, resolve the target" "$work/phase_start.t"
  showms "maintenance connection, server version" "$work/phase_maintenance.t"
  showms "lock connection and lock, runs table and row" "$work/phase_lock.t"
  showms "target connection, release gate, history table, first log file" "$work/phase_target.t"
fi
