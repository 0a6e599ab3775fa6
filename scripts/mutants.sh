#!/usr/bin/env bash
# Proof that the simulator hunts: re-introduces each bug of scripts/mutations/
# into a scratch worktree of HEAD, builds the simulator there, and sweeps seeds
# until the first failure. Prints one table row per mutation (seeds and time to
# the first failure, and the invariant that failed) for docs/TESTING.md.
#
#   scripts/mutants.sh                      # every mutation, up to 10,000 seeds each
#   SEEDS=20000 scripts/mutants.sh bug1_vote_below_floor
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
seeds=${SEEDS:-10000}
work=${MUTANTS_DIR:-$root/target/mutants}
# Every mutant starts from the commit checked out now, even if HEAD moves.
base=$(git rev-parse "${MUTANTS_BASE:-HEAD}")
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$work"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for m in scripts/mutations/*.py; do
    n=$(basename "$m" .py)
    [ "$n" = mutate ] || names+=("$n")
  done
fi
echo "| mutation | first failing seed | seeds run | time (s) | invariant that failed |"
echo "|---|---|---|---|---|"
for name in "${names[@]}"; do
  wt="$work/$name"
  git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"
  git worktree add --detach "$wt" "$base" >/dev/null 2>&1
  # Whatever happens, the scratch worktree goes.
  trap 'git -C "$root" worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
  if ! (cd scripts/mutations && python3 "$name.py" "$wt"); then
    printf '| %s | - | - | - | the mutation no longer applies to this code |\n' "$name"
    git worktree remove --force "$wt" >/dev/null 2>&1 || true
    continue
  fi
  if ! CARGO_TARGET_DIR="$target" cargo build --quiet --release -p diskv-sim \
    --manifest-path "$wt/Cargo.toml" >"$work/$name.build.log" 2>&1; then
    printf '| %s | - | - | - | the mutant does not build: %s |\n' "$name" "$work/$name.build.log"
    git worktree remove --force "$wt" >/dev/null 2>&1 || true
    continue
  fi
  start=$(date +%s.%N)
  set +e
  "$target/release/diskv-sim" --seeds "$seeds" --max-failures 1 >"$work/$name.log" 2>&1
  set -e
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
  runs=$(sed -n 's/^diskv-sim: \([0-9]*\) seeds in.*/\1/p' "$work/$name.log")
  seed=$(sed -n 's/^failing seed \([0-9]*\):.*/\1/p' "$work/$name.log" | head -1)
  what=$(sed -n 's/^failing seed [0-9]*: //p' "$work/$name.log" | head -1 | cut -c1-160 | tr '|' '/')
  printf '| %s | %s | %s | %.0f | %s |\n' "$name" "${seed:-none}" "${runs:-?}" "$secs" "${what:-not found}"
  git worktree remove --force "$wt" >/dev/null 2>&1 || true
  trap - EXIT
done
