#!/usr/bin/env bash
# The same tool on both sides: redis-benchmark against `diskv serve --resp`, a
# `diskv cluster` of one group of 3 replicas with `--resp`, and Redis with
# `appendonly yes, appendfsync always` (every write fsynced before the reply, as
# diskv does), one after another in one run, on loopback. Prints a markdown table.
#
#   scripts/resp-bench.sh                  # -t set,get,incr -c 64 -P 1 and -P 16
#   N=200000 PIPELINES="1 16" scripts/resp-bench.sh
#
# Environment: BIN (the diskv binary, default target/release/diskv), N (requests
# per test, 100000), CLIENTS (64), TESTS (set,get,incr), PIPELINES ("1 16"),
# KEYS (random key space, -r, 100000), TARGETS ("redis serve cluster").
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/diskv}
N=${N:-100000}
CLIENTS=${CLIENTS:-64}
TESTS=${TESTS:-set,get,incr}
PIPELINES=${PIPELINES:-"1 16"}
KEYS=${KEYS:-100000}
TARGETS=${TARGETS:-"redis serve cluster"}

for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "resp-bench: $tool is missing (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "resp-bench: no diskv binary at $BIN (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (at most 60 s) until `redis-cli -p PORT ping` answers PONG.
wait_pong() {
  for _ in $(seq 600); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "resp-bench: the server exited; see $2" >&2; cat "$2" >&2; exit 1; }
    sleep 0.1
  done
  echo "resp-bench: no PONG on port $1 within 60 s; see $2" >&2
  exit 1
}

# Waits (at most 120 s) until the diskv front door serves a write.
wait_serving() {
  for _ in $(seq 1200); do
    [ "$(redis-cli -p "$1" set resp-bench:probe x 2>/dev/null)" = OK ] && return 0
    sleep 0.1
  done
  echo "resp-bench: port $1 does not take writes within 120 s" >&2
  exit 1
}

start() {
  local target=$1 port=$2 http
  http=$(free_port)
  case $target in
    redis)
      mkdir -p "$work/redis"
      redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis" --save '' \
        --appendonly yes --appendfsync always >"$work/redis.log" 2>&1 &
      server_pid=$!
      wait_pong "$port" "$work/redis.log"
      ;;
    serve)
      "$BIN" serve --listen "127.0.0.1:$http" --resp "127.0.0.1:$port" \
        --data-dir "$work/serve" >"$work/serve.log" 2>&1 &
      server_pid=$!
      wait_pong "$port" "$work/serve.log"
      wait_serving "$port"
      ;;
    cluster)
      "$BIN" cluster --groups 1 --replicas 3 --masters 1 --dir "$work/cluster" \
        --http "127.0.0.1:$http" --resp "127.0.0.1:$port" >"$work/cluster.log" 2>&1 &
      server_pid=$!
      wait_pong "$port" "$work/cluster.log"
      wait_serving "$port"
      ;;
  esac
}

describe() {
  case $1 in
    redis) echo "Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), appendfsync always" ;;
    serve) echo "diskv serve --resp" ;;
    cluster) echo "diskv cluster, 1 group x 3 replicas" ;;
  esac
}

echo "resp-bench: $(nproc) cores; redis-benchmark -t $TESTS -n $N -c $CLIENTS -r $KEYS -P {${PIPELINES// /,}}" >&2
rows=()
for target in $TARGETS; do
  port=$(free_port)
  start "$target" "$port"
  for p in $PIPELINES; do
    echo "resp-bench: $target -P $p" >&2
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    while IFS=, read -r test rps avg _min p50 _p95 p99 _max; do
      [ "$test" = '"test"' ] && continue
      rows+=("| $(describe "$target") | ${test//\"/} | $p | ${rps//\"/} | ${p50//\"/} | ${p99//\"/} |")
    done < <(redis-benchmark -h 127.0.0.1 -p "$port" -t "$TESTS" -n "$N" -c "$CLIENTS" \
               -r "$KEYS" -P "$p" --csv 2>/dev/null)
  done
  stop_server
done

echo "| target | test | -P | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
