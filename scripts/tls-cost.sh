#!/usr/bin/env bash
# What mutual TLS between the processes costs (issue #14): a 1x3 `diskv cluster`
# with its default mTLS, then the same with --insecure, each driven through its
# Redis port by redis-benchmark (SET and GET, -c 64, -P 1), ROUNDS times in
# turn. Needs the release binary (cargo build --release) and redis-tools.
# Every cluster is stopped by its pid; its directory is removed.
set -euo pipefail
BIN=${DISKV:-$(dirname "$0")/../target/release/diskv}
ROUNDS=${ROUNDS:-2}
N=${N:-30000}

run() {
  local label=$1 flag=$2 resp=$3 http=$4
  local dir pid
  dir=$(mktemp -d /tmp/diskv-tls-cost.XXXX)
  "$BIN" cluster --dir "$dir" --groups 1 --replicas 3 --masters 1 \
    --http "127.0.0.1:$http" --resp "127.0.0.1:$resp" $flag >"$dir/out" 2>"$dir/err" &
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 1 240); do
    grep -q "Redis protocol listening" "$dir/out" && break
    sleep 0.5
  done
  redis-benchmark -p "$resp" -t set,get -c 64 -n "$N" -r 100000 -q 2>/dev/null \
    | tr '\r' '\n' | grep -E "requests per second" | sed "s/^/$label /"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"; trap - EXIT
}

for _ in $(seq 1 "$ROUNDS"); do
  run "mTLS    " "" 16380 18090
  run "insecure" "--insecure" 16381 18091
done
