# Workspace tasks. CI (.ci/run) runs `make test`; `make verify` adds fmt and clippy.

CARGO ?= cargo

.PHONY: all bench bench-full test verify fmt sim mutants fuzz

# The release binary (honours CARGO_TARGET_DIR).
DISKV ?= $${CARGO_TARGET_DIR:-target}/release/diskv

all: verify

## bench: the quick YCSB sweep (`diskv bench sweep --preset quick`): local clusters of
## 1x3, 3x3, 5x3, 1x1 and 1x5 (groups x replicas), workloads A-F, 1/10/64 clients,
## 5 s per run, about three minutes on two cores. Results in bench-results/ (sweep.json, results.csv, SVG
## charts); rewrites the tables and charts of docs/BENCHMARKS.md.
bench:
	$(CARGO) build --release --bin diskv
	$(DISKV) bench sweep --preset quick --out bench-results --doc docs/BENCHMARKS.md

## bench-full: the whole matrix (1, 10, 20, 30, 64, 256 clients; 10 s per run) into
## bench-results/full (rewrites docs/BENCHMARKS.md), then the paxos group
## microbenchmark and the KV Clerk benchmark (PAXOS_BENCH_SECS / DISKV_BENCH_SECS set
## their seconds per load level, default 5; tables on stdout, JSON under the target dir).
bench-full:
	$(CARGO) build --release --bin diskv
	$(DISKV) bench sweep --preset full --out bench-results/full --doc docs/BENCHMARKS.md
	$(CARGO) bench -p paxos --bench group
	$(CARGO) bench -p diskv --bench clerk

## test: every test of the workspace (unit, integration and doc tests), including
## a short sweep of the deterministic simulator (sim/tests/sweep.rs: SIM_TEST_SEEDS
## seeds, default 400, about a minute) and every fuzz target over its corpus plus
## a short mutation run (fuzz/tests/corpus.rs, about 20 s).
test:
	$(CARGO) test --workspace

## sim: the deterministic simulator's sweep on the release build: SEEDS seeds
## (default 1500, about four minutes on two cores) from FIRST_SEED (default 0); every
## failure prints its seed and the command that replays it with a full trace.
## Long runs: SEEDS=100000 make sim. See docs/TESTING.md.
sim:
	$(CARGO) build --release -p diskv-sim
	$${CARGO_TARGET_DIR:-target}/release/diskv-sim --seeds $${SEEDS:-1500}

## fuzz: every fuzz target of fuzz/ (decoders of bytes from the network or the disk)
## for FUZZ_SECS seconds each (default 60), on the `fuzz` profile (release with
## overflow checks and debug assertions); FUZZ_TARGET=NAME runs one, FUZZ_SEED=S
## replays a run. A failing input is saved under fuzz/crashes/<target>/ with the
## command that replays it. See docs/TESTING.md, "Fuzzing".
fuzz:
	$(CARGO) build --profile fuzz -p diskv-fuzz
	$${CARGO_TARGET_DIR:-target}/fuzz/diskv-fuzz --target $${FUZZ_TARGET:-all} --secs $${FUZZ_SECS:-60} $${FUZZ_SEED:+--seed $$FUZZ_SEED}

## mutants: re-introduces each bug of scripts/mutations/ and measures how many
## seeds the simulator needs to find it (the table of docs/TESTING.md).
mutants:
	scripts/mutants.sh

## verify: formatting, lints as errors, then every test.
verify:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) test

## fmt: format the workspace.
fmt:
	$(CARGO) fmt --all

.PHONY: run serve

## The Redis protocol's address for `make run` and `make serve`: 6380, next to
## Redis's own 6379, so a Redis server on the machine does not clash. `RESP=` turns
## it off; `RESP=127.0.0.1:6379` takes Redis's port.
RESP ?= 127.0.0.1:6380

## run: a local cluster (3 shardmasters, 3 groups x 3 replicas, each a process) with
## the HTTP API on :8080 and the Redis protocol on $(RESP); data and logs in
## ./cluster; Ctrl-C stops everything.
## Extra flags: make run ARGS="--groups 2 --http 127.0.0.1:9000".
run:
	$(CARGO) run --release -- cluster $(if $(RESP),--resp $(RESP)) $(ARGS)

## serve: one node (shardmaster + KV replica in one process) with the HTTP API on
## :8080 and the Redis protocol on $(RESP); data in ./data (or $$DATA_DIR).
## Extra flags: make serve ARGS="--listen 127.0.0.1:9000".
serve:
	$(CARGO) run --release -- serve $(if $(RESP),--resp $(RESP)) $(ARGS)

## bench-resp: redis-benchmark against diskv serve --resp, a 1x3 diskv cluster and
## Redis (appendfsync always) in one run; prints a markdown table
## (scripts/resp-bench.sh; needs redis-server and redis-tools: make bench-compare-deps).
bench-resp:
	$(CARGO) build --release --bin diskv
	scripts/resp-bench.sh

.PHONY: bench-compare bench-compare-deps bench-resp

## Debian packages the comparison needs: the peers' servers, and protoc with the
## well-known .proto files for the etcd-client crate's build.
COMPARE_PACKAGES := etcd-server redis-server protobuf-compiler libprotobuf-dev
## Where `make bench-compare` writes its JSON, markdown table and plots.
COMPARE_OUT ?= docs/bench/compare
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## bench-compare: diskv side by side with etcd (3 members, gRPC, linearizable reads)
## and Redis (appendfsync always) in alternating runs of the same workloads; installs
## the Debian packages first if missing. Results in $(COMPARE_OUT) and the comparison
## section of docs/BENCHMARKS.md. Extra flags: make bench-compare ARGS="--rounds 1".
bench-compare: bench-compare-deps
	$(CARGO) build --release --bin diskv --features compare
	$(DISKV) bench compare --out $(COMPARE_OUT) --doc docs/BENCHMARKS.md $(ARGS)

## bench-compare-deps: apt-get install the packages above that are missing. Package
## scripts may start system services (redis on 6379, etcd on 2379): they are stopped
## and disabled again, since the comparison starts its own servers on other ports.
bench-compare-deps:
	@missing=""; \
	for p in $(COMPARE_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "bench-compare: packages present: $(COMPARE_PACKAGES)"; exit 0; fi; \
	echo "bench-compare: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$(SUDO) apt-get install -y --no-install-recommends $$missing || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; } || exit 1; \
	if [ -d /run/systemd/system ]; then \
	  $(SUDO) systemctl disable --now redis-server etcd 2>/dev/null || true; \
	fi
