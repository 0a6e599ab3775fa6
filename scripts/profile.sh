#!/usr/bin/env bash
# Profiles one `diskv bench --spawn` run (docs/BENCHMARKS.md, "Where the time goes"):
# over SECONDS of the measured interval, CPU per process (/proc) and of the whole
# machine (/proc/stat), the bench's throughput, perf samples of every diskv process
# (DWARF call graphs: top symbols, CPU per thread name, and with inferno per-stage
# shares), the `diskv serve` /metrics fsync counters, and unless STAT=0 syscall
# counts (perf stat on syscall tracepoints) and times of the sync and file calls
# (perf trace -s). Needs perf and root (or perf_event_paranoid <= 1).
#
#   scripts/profile.sh SPAWN WORKLOAD CLIENTS [SECONDS] [OUT]
#   scripts/profile.sh serve a 64 10 /tmp/prof-serve-a64
#   STAT=0 FLAME=1 scripts/profile.sh 1x3 c 64
#
# Env: DISKV (binary, default target/release/diskv), FREQ (perf Hz, default 499),
# STAT=0 (skip the syscall counts and traces, which cost CPU themselves),
# FLAME=1 (also OUT/flame-<role>.svg). With inferno-collapse-perf on PATH (`cargo
# install inferno`) it also prints per-stage shares of each process's samples.
# The bench measures SECONDS+6 s; the profile starts about 1 s into it. Only the
# processes this script starts are profiled and stopped (by pid). OUT/summary.txt
# holds the figures; OUT/top.<role>.txt the top symbols.
set -euo pipefail

SPAWN=${1:?usage: $0 SPAWN WORKLOAD CLIENTS [SECONDS] [OUT]}
WL=${2:?workload}
CLIENTS=${3:?clients}
SECS=${4:-10}
OUT=${5:-$(mktemp -d /tmp/diskv-profile-XXXX)}
DISKV=${DISKV:-target/release/diskv}
FREQ=${FREQ:-499}
PERF=${PERF:-perf}
mkdir -p "$OUT"
HZ=$(getconf CLK_TCK)

"$DISKV" bench --spawn "$SPAWN" -w "$WL" -c "$CLIENTS" --warmup 2s \
    --duration "$((SECS + 6))s" --out "$OUT/bench" 2>"$OUT/bench.stderr" >"$OUT/bench.stdout" &
BENCH=$!
trap 'kill "$BENCH" 2>/dev/null || true' EXIT

# Wait for the measured interval, then 1 s more.
for _ in $(seq 1 600); do
    grep -q "measuring:" "$OUT/bench.stderr" 2>/dev/null && break
    kill -0 "$BENCH" 2>/dev/null || { cat "$OUT/bench.stderr"; exit 1; }
    sleep 0.2
done
sleep 1

# The processes: the bench itself and its children, labelled by role.
declare -A ROLE
ROLE[$BENCH]=bench-client
for p in $(pgrep -P "$BENCH"); do
    args=$(tr '\0' ' ' <"/proc/$p/cmdline")
    case "$args" in
    *" serve "*) ROLE[$p]=serve ;;
    *" shardmaster "*) ROLE[$p]=shardmaster ;;
    *" server "*)
        me=$(sed -E 's/.*--me ([0-9]+).*/\1/' <<<"$args")
        gid=$(sed -E 's/.*--gid ([0-9]+).*/\1/' <<<"$args")
        ROLE[$p]="g$gid-replica-$me"
        ;;
    *) ROLE[$p]="child-$p" ;;
    esac
done
PIDS=$(IFS=,; echo "${!ROLE[*]}")

# CPU ticks (utime+stime) of a process.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ops_now() { grep -o 'measuring: [0-9]* ops' "$OUT/bench.stderr" | tail -1 | awk '{print $2}'; }
declare -A T0
for p in "${!ROLE[@]}"; do
    T0[$p]=$(proc_ticks "$p")
done
# `diskv serve` exposes its replica's persister counters on GET /metrics.
metrics() {
    for p in "${!ROLE[@]}"; do
        [ "${ROLE[$p]}" = serve ] || continue
        for port in $(ss -ltnpH | grep "pid=$p," | awk '{print $4}' | sed 's/.*://'); do
            curl -s -m 1 "http://127.0.0.1:$port/metrics" | grep -E '^diskv_(paxos_fsync|paxos_records|rsm_applied)' && break
        done
    done
}
metrics >"$OUT/metrics0" || true
cpu_stat() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
CPU0=$(cpu_stat)
OPS0=$(ops_now)
START=$(date +%s.%N)

EVENTS=syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_syncfs
EVENTS=$EVENTS,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto
EVENTS=$EVENTS,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait
EVENTS=$EVENTS,syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,syscalls:sys_enter_pwrite64
EVENTS=$EVENTS,context-switches
STATS=()
TRACES=()
# STAT=0: no syscall counting or tracing (their tracepoints cost up to ~15% of a
# process's samples, as perf_tp_event, inflating syscall-heavy stages).
[ "${STAT:-1}" = 0 ] && ROLES_TRACED="" || ROLES_TRACED="${!ROLE[*]}"
for p in $ROLES_TRACED; do
    "$PERF" stat -x, -e "$EVENTS" -p "$p" -o "$OUT/stat.${ROLE[$p]}" -- sleep "$SECS" &
    STATS+=($!)
done
for p in $ROLES_TRACED; do
    [ "${ROLE[$p]}" = bench-client ] && continue
    "$PERF" trace -s -e fdatasync,fsync,syncfs,openat,rename,unlink -p "$p" \
        -o "$OUT/trace.${ROLE[$p]}" -- sleep "$SECS" >/dev/null 2>&1 &
    TRACES+=($!)
done
"$PERF" record -q -F "$FREQ" --call-graph dwarf,16384 -p "$PIDS" -o "$OUT/perf.data" \
    -- sleep "$SECS" 2>"$OUT/perf-record.stderr" &
RECORD=$!
# The window ends here, not when perf has finished writing.
sleep "$SECS"
END=$(date +%s.%N)
OPS1=$(ops_now)
CPU1=$(cpu_stat)
declare -A T1
for p in "${!ROLE[@]}"; do T1[$p]=$(proc_ticks "$p"); done
metrics >"$OUT/metrics1" || true
wait "$RECORD" ${STATS[@]+"${STATS[@]}"} ${TRACES[@]+"${TRACES[@]}"}

{
    WALL=$(echo "$END - $START" | bc)
    echo "# diskv bench --spawn $SPAWN -w $WL -c $CLIENTS: profile of ${WALL%???????} s"
    echo "ops in the window (from the progress lines, 1 s resolution): $((OPS1 - OPS0))," \
        "$(echo "($OPS1 - $OPS0) / $WALL" | bc) ops/s"
    if [ -s "$OUT/metrics1" ]; then
        echo "serve /metrics over the window (after - before):"
        paste -d' ' "$OUT/metrics0" "$OUT/metrics1" | awk '{printf "  %-40s %s\n", $1, $4 - $2}'
    fi
    echo
    echo "## CPU per process (utime+stime over the window; 100% = one core)"
    echo "$CPU0 $CPU1" | awk -v n="$(nproc)" '{printf "whole machine (/proc/stat): %.1f%% busy of %d cores (100%% = one core)\n",
        100 * n * (1 - ($4 - $2) / ($3 - $1)), n}'
    all=0
    for p in "${!ROLE[@]}"; do all=$((all + T1[$p] - T0[$p])); done
    echo "all diskv processes: $(echo "100 * $all / $HZ / $WALL" | bc)% of a core;" \
        "$(echo "1000000 * $all / $HZ / ($OPS1 - $OPS0)" | bc) us of CPU per operation"
    for p in "${!ROLE[@]}"; do
        t=$((T1[$p] - T0[$p]))
        printf '%-18s pid %-7s %6.1f%%\n' "${ROLE[$p]}" "$p" "$(echo "100 * $t / $HZ / $WALL" | bc -l)"
    done | sort -k4 -rn
    echo
    echo "## Syscalls per process over the window (perf stat)"
    for p in "${!ROLE[@]}"; do
        [ -f "$OUT/stat.${ROLE[$p]}" ] || continue
        echo "${ROLE[$p]}:"
        grep -v '^#' "$OUT/stat.${ROLE[$p]}" | awk -F, 'NF > 2 && $1 + 0 > 0 {
            sub("syscalls:sys_enter_", "", $3); printf "  %-18s %10d\n", $3, $1 }'
    done
    echo
    echo "## Time in sync and file calls per process (perf trace -s; msec)"
    for p in "${!ROLE[@]}"; do
        [ -f "$OUT/trace.${ROLE[$p]}" ] || continue
        echo "${ROLE[$p]}:"
        awk '$2 ~ /^[0-9]+$/ && $1 ~ /^[a-z_0-9]+$/ && NF >= 7 {
            c[$1] += $2; t[$1] += $4; if ($7 > m[$1]) m[$1] = $7 }
            END { for (k in c) printf "  %-10s calls %7d  total %9.1f  avg %7.3f  max %8.1f\n",
                k, c[k], t[k], t[k] / c[k], m[k] }' "$OUT/trace.${ROLE[$p]}"
    done
} | tee "$OUT/summary.txt"

echo "## CPU samples per thread name, per process (perf report --sort comm)" >>"$OUT/summary.txt"
for p in "${!ROLE[@]}"; do
    echo "${ROLE[$p]}:" >>"$OUT/summary.txt"
    "$PERF" report -i "$OUT/perf.data" --pid "$p" --no-children --sort comm --stdio -g none --percentage relative \
        2>/dev/null | grep '%' | head -4 >>"$OUT/summary.txt" || true
    "$PERF" report -i "$OUT/perf.data" --pid "$p" --no-children --sort sym --stdio --percentage relative \
        --percent-limit 1.5 -g none 2>/dev/null | grep -v '^$' >"$OUT/top.${ROLE[$p]}.txt" || true
    if command -v inferno-collapse-perf >/dev/null; then
        "$PERF" script -i "$OUT/perf.data" --pid "$p" 2>/dev/null | inferno-collapse-perf \
            >"$OUT/folded.${ROLE[$p]}" || true
    fi
    if [ "${FLAME:-0}" = 1 ] && command -v inferno-flamegraph >/dev/null; then
        inferno-flamegraph --minwidth 0.5 --title "${ROLE[$p]}: --spawn $SPAWN -w $WL -c $CLIENTS" \
            <"$OUT/folded.${ROLE[$p]}" >"$OUT/flame-${ROLE[$p]}.svg" || true
    fi
done
# Per-stage shares of each process's samples, from the folded stacks: each sample
# goes to the first stage whose pattern matches a frame of its stack; aspects are
# inclusive and overlap the stages.
if ls "$OUT"/folded.* >/dev/null 2>&1; then
    python3 - "$OUT"/folded.* <<'PY' | tee -a "$OUT/summary.txt"
import re, sys
stages = [
    ("checkpoint (key files, syncfs)", r"CheckpointWrite|diskv::checkpoint::"),
    ("persister (log append + fdatasync)", r"paxos::node::persister"),
    ("paxos core loop", r"paxos::node::CoreLoop"),
    ("rsm apply loop", r"paxos::rsm::apply_loop"),
    ("paxos peer transport (PeerNet, mux)", r"paxos::transport::(peer|mux|net)"),
    ("RPC send (tarpc write, writev)", r"pump_write|poll_write_buf|sys_writev|sys_sendto"),
    ("RPC receive (tarpc read, recvfrom)", r"pump_read|poll_read_buf|sys_recvfrom|sys_read\b"),
    ("KV service (request handling)", r"KvService::execute_request|tarpc::server::InFlightRequest"),
    ("Clerk + tarpc client", r"diskv::clerk::|tarpc::client::"),
    ("bench driver", r"diskv_bin::bench::"),
    ("tokio scheduler / park / epoll", r"tokio::runtime::scheduler|epoll_wait|park"),
]
aspects = [
    ("postcard / serde codec", r"postcard::|serde_core::"),
    ("malloc / free", r"malloc|free|realloc|_int_"),
    ("kernel (any syscall or irq)", r"entry_SYSCALL|asm_|irq"),
    ("context switch (finish_task_switch)", r"finish_task_switch|__schedule"),
]
for path in sys.argv[1:]:
    total, st, asp = 0, {}, {}
    for line in open(path):
        stack, n = line.rstrip().rsplit(" ", 1)
        n = int(n); total += n
        name = next((k for k, pat in stages if re.search(pat, stack)), "other")
        st[name] = st.get(name, 0) + n
        for k, pat in aspects:
            if re.search(pat, stack):
                asp[k] = asp.get(k, 0) + n
    print(f"\n## Stages of {path.rsplit('.', 1)[1]} (share of its CPU samples)")
    for k, n in sorted(st.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * n / total:5.1f}%  {k}")
    for k, n in sorted(asp.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * n / total:5.1f}%  [aspect] {k}")
PY
fi
wait "$BENCH" || true
trap - EXIT
cat "$OUT/bench.stdout" | grep -E 'ops/s|total|read|update' | head -8
echo "outputs in $OUT (summary.txt, top.<role>.txt, perf.data)"
