# Workspace tasks. CI (.ci/run) runs `make test`; `make verify` adds fmt and clippy.

CARGO ?= cargo

.PHONY: all bench test verify fmt

all: verify

## bench: the paxos group benchmark (3 replicas on loopback, fsync on) and the KV
## Clerk benchmark (3-replica group, 1 and 64 clients, 50/50 Get/Put of 1 KB);
## tables on stdout, JSON in <target dir>/bench/paxos.json and <target dir>/tmp/bench/clerk.json.
## PAXOS_BENCH_SECS / DISKV_BENCH_SECS set the seconds per load level (default 5).
bench:
	$(CARGO) bench -p paxos --bench group
	$(CARGO) bench -p diskv --bench clerk

## test: every test of the workspace (unit, integration and doc tests).
test:
	$(CARGO) test --workspace

## verify: formatting, lints as errors, then every test.
verify:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) test

## fmt: format the workspace.
fmt:
	$(CARGO) fmt --all

.PHONY: run serve

## run: a local cluster (3 shardmasters, 3 groups x 3 replicas, each a process) with
## the HTTP API on :8080; data and logs in ./cluster; Ctrl-C stops everything.
## Extra flags: make run ARGS="--groups 2 --http 127.0.0.1:9000".
run:
	$(CARGO) run --release -- cluster $(ARGS)

## serve: one node (shardmaster + KV replica in one process) with the HTTP API on
## :8080; data in ./data (or $$DATA_DIR). Extra flags: make serve ARGS="--listen 127.0.0.1:9000".
serve:
	$(CARGO) run --release -- serve $(ARGS)
