#!/bin/bash
# B3 scenario: 1 group x 3 replicas, N concurrent 16 MB PUTs; prints peak RSS (VmHWM) per process.
# Usage: scripts/large-writes.sh (after `cargo build --release`); N=12 by default.
set -u
WORK=$(mktemp -d)
trap "[ -n \"${KEEP:-}\" ] || rm -rf $WORK" EXIT; echo "work: $WORK"
head -c 16000000 /dev/zero | tr "\\0" x > $WORK/val16
BIN=$(realpath "${BIN:-target/release/diskv}")
N=${N:-12}
rm -rf $WORK/cl; mkdir -p $WORK/cl
cd $WORK
setsid $BIN cluster --groups 1 --replicas 3 --masters 1 --dir $WORK/cl --http 127.0.0.1:18600 > $WORK/cluster.out 2> $WORK/cluster.err &
CPID=$!
for i in $(seq 1 60); do curl -s -o /dev/null -w "%{http_code}" 127.0.0.1:18600/health 2>/dev/null | grep -q 200 && break; sleep 0.5; done
curl -s 127.0.0.1:18600/health; echo
START=$(date +%s.%N)
for i in $(seq 1 $N); do
  ( code=$(curl -s -o $WORK/body.$i -w "%{http_code}" -X PUT --data-binary @$WORK/val16 127.0.0.1:18600/kv/big$i); echo "put $i: $code $(head -c 100 $WORK/body.$i)" ) &
done
wait $(jobs -p | grep -v $CPID) 2>/dev/null
sleep 0.2
END=$(date +%s.%N)
echo "elapsed: $(echo "$END - $START" | bc)"
cpu() { awk '{printf "cpu=%.2fs", ($14+$15)/100}' /proc/$1/stat; }
for p in $(pgrep -P $CPID); do echo "$(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-60) | $(grep -E 'VmHWM|VmRSS' /proc/$p/status | tr -s ' ' | tr '\n' ' ') $(cpu $p)"; done
echo "front: $(grep -E 'VmHWM|VmRSS' /proc/$CPID/status | tr -s ' ' | tr '\n' ' ') $(cpu $CPID)"
kill -TERM -- -$CPID; sleep 2; kill -KILL -- -$CPID 2>/dev/null
