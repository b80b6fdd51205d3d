# Shared by the apply benchmarks (sourced, not run): the release build, a
# throwaway cluster, timing and medians, and what the machine was doing.
# Times are wall-clock seconds from bash's $EPOCHREALTIME (microseconds).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
release=$repo/target/release

# Builds the binary and the examples the benchmarks run, in release mode.
# SKIP_BUILD=1 uses what is already built.
build_release() {
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$repo" && cargo build --release --quiet --bin plan \
      --example bench_cluster --example fingerprint) >&2
  fi
}

# Starts a throwaway cluster (examples/bench_cluster.rs, the crate's own
# `Cluster`, which runs the server as `plan-runner-pg` when we are root)
# and exports PGHOST, PGPORT, PGUSER, CLUSTER_DATA, CLUSTER_BIN. The cluster
# lives while this shell holds fd 9 (its stdin), so it goes away with the
# script however the script ends. Arguments go to bench_cluster.
start_cluster() {
  local fifo info
  work=${work:-$(mktemp -d)}
  fifo=$work/cluster.stdin
  info=$work/cluster.env
  mkfifo "$fifo"
  "$release/examples/bench_cluster" "$@" <"$fifo" >"$info" 2>"$work/cluster.err" &
  cluster_pid=$!
  exec 9>"$fifo"
  local waited=0
  while ! grep -q '^CLUSTER_BIN=' "$info" 2>/dev/null; do
    if ! kill -0 "$cluster_pid" 2>/dev/null; then
      cat "$work/cluster.err" >&2
      echo "the benchmark cluster did not start" >&2
      return 1
    fi
    sleep 0.2
    waited=$((waited + 1))
    if ((waited > 600)); then
      echo "the benchmark cluster took over 2 minutes to start" >&2
      return 1
    fi
  done
  set -a
  # shellcheck disable=SC1090
  . "$info"
  set +a
  unset PGDATABASE PGPASSWORD PGSERVICE PGSSLMODE PGOPTIONS
  export PATH=$CLUSTER_BIN:$PATH
}

# Ends the cluster: closing fd 9 is its signal, then it stops the server.
stop_cluster() {
  if [[ -n ${cluster_pid:-} ]]; then
    exec 9>&-
    wait "$cluster_pid" 2>/dev/null || true
    cluster_pid=
  fi
}

now() { echo "$EPOCHREALTIME"; }

# elapsed START: seconds since START (a `now` value), 6 decimals.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f\n", b - a }'; }

# stats: numbers on stdin, one a line -> "median min max n".
stats() {
  sort -g | awk '{ v[NR] = $1 }
    END {
      if (NR == 0) { print "nan nan nan 0"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.4f %.4f %.4f %d\n", m, v[1], v[NR], NR
    }'
}

# ratio A B: A / B with 2 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.2f\n", a / b }'; }

# psql against the benchmark cluster: no psqlrc, stop at the first error.
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# sql_timed DB SQL: runs SQL in one session with \timing and prints the sum
# of the statements' times in seconds (client-side round trips, the
# session's start and connection excluded, as for a runner that already
# holds its connection).
sql_timed() {
  local out
  if ! out=$( { echo '\timing on'; echo "$2"; } | q -d "$1" -o /dev/null 2>"$work/psql.err"); then
    cat "$work/psql.err" >&2
    return 1
  fi
  # -o sends the results away; the "Time: 12.345 ms" lines stay on stdout.
  echo "$out" | sum_times
}

# The sum of the "Time: N ms" lines on stdin, in seconds.
sum_times() { awk '/^Time:/ { s += $2 } END { printf "%.6f\n", s / 1000 }'; }

load() { awk '{ print $1, $2, $3 }' /proc/loadavg; }

# What the figures were measured on.
machine() {
  echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu:         $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores"
  echo "memory:      $(awk '/MemTotal/ { printf "%.1f GiB\n", $2 / 1048576 }' /proc/meminfo)"
  local dev
  dev=$(df --output=source "${work:-/tmp}" | tail -n 1)
  echo "disk:        $dev, $(lsblk -dno NAME,ROTA,SIZE "/dev/$(lsblk -no PKNAME "$dev" 2>/dev/null | head -n 1)" 2>/dev/null \
    || lsblk -dno NAME,ROTA,SIZE "$dev" 2>/dev/null) (NAME ROTA SIZE; ROTA=1 means the kernel reports it rotational), $(df -h --output=avail "${work:-/tmp}" | tail -n 1 | tr -d ' ') free"
  echo "postgresql:  $("${CLUSTER_BIN:-/usr/lib/postgresql/15/bin}/postgres" --version)"
  echo "kernel:      $(uname -r)"
  echo "load avg:    $(load) (1, 5, 15 min) at start"
}
