#!/usr/bin/env python3
"""Memory and descriptors of `diskv serve` under idle connections and garbage
(issue #18, deliverable 5). Not a test: it prints figures for docs/BENCHMARKS.md.

Starts `diskv serve` (the release build, or $DISKV) on a temporary data directory,
then measures, for a client that keeps doing PUT + GET over HTTP:

1. baseline: the client alone;
2. under abuse: IDLE idle connections to the HTTP port, IDLE idle tagged
   connections to the group's daemon port, and GARBAGE connections that send a
   frame header announcing 200 MiB then trickle bytes, plus random bytes.

For each phase it reports the client's operations, p50 and p99 latency, and the
serve process's RSS and open descriptors. Everything runs on 127.0.0.1; the
process is killed by pid at the end.

Usage: scripts/abuse-figures.py [--idle 2000] [--garbage 64] [--secs 10]
"""

import argparse
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def http(addr, method, path, body=b""):
    host, port = addr.split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    req = (
        f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    s.sendall(req)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1") else 0
    return status


def client_phase(addr, secs):
    """PUT + GET of rotating keys for `secs`; returns (ops, p50 ms, p99 ms, errors)."""
    lat, errors = [], 0
    end = time.time() + secs
    i = 0
    while time.time() < end:
        key = f"k{i % 100}"
        for method, body in (("PUT", f"v{i}".encode()), ("GET", b"")):
            t0 = time.perf_counter()
            try:
                st = http(addr, method, f"/kv/{key}", body)
            except OSError:
                st = 0
            lat.append((time.perf_counter() - t0) * 1000)
            if st != 200:
                errors += 1
        i += 1
    lat.sort()
    return len(lat), lat[len(lat) // 2], lat[int(len(lat) * 0.99)], errors


def open_idle(port, n, tag=None):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if tag:
                s.sendall(tag)
            socks.append(s)
        except OSError:
            break
    return socks


def open_garbage(port, n):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            # Tag `P`, then a length prefix announcing about 200 MiB, then a little.
            s.sendall(b"P" + (200 << 20).to_bytes(4, "big") + os.urandom(4096))
            socks.append(s)
        except OSError:
            break
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--garbage", type=int, default=64)
    ap.add_argument("--secs", type=float, default=10)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = os.environ.get("DISKV", "target/release/diskv")
    data = tempfile.mkdtemp(prefix="diskv-abuse-")
    port = random.randint(20000, 30000)
    addr = f"127.0.0.1:{port}"
    log = open(os.path.join(data, "serve.log"), "w")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", addr, "--data-dir", os.path.join(data, "d")],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            if line.startswith("Loaded "):
                break
        with open(os.path.join(data, "d", "ports")) as f:
            group_port = json.load(f)["group"]
        before = (rss_mb(proc.pid), fds(proc.pid))
        base = client_phase(addr, args.secs)
        idle_http = open_idle(port, args.idle)
        idle_tagged = open_idle(group_port, args.idle, b"P")
        junk = open_garbage(group_port, args.garbage)
        for s in junk:
            try:
                s.sendall(os.urandom(65536))
            except OSError:
                pass
        during_rss = rss_mb(proc.pid)
        under = client_phase(addr, args.secs)
        after = (rss_mb(proc.pid), fds(proc.pid))
        print(f"connections opened: {len(idle_http)} idle HTTP, {len(idle_tagged)} idle tagged, "
              f"{len(junk)} garbage (a 200 MiB frame header, then random bytes)")
        print("| phase | client ops | p50 ms | p99 ms | errors | serve RSS MB | serve fds |")
        print("|---|---|---|---|---|---|---|")
        print(f"| client alone | {base[0]} | {base[1]:.2f} | {base[2]:.2f} | {base[3]} | {before[0]:.0f} | {before[1]} |")
        print(f"| under abuse | {under[0]} | {under[1]:.2f} | {under[2]:.2f} | {under[3]} | {max(during_rss, after[0]):.0f} | {after[1]} |")
        for s in idle_http + idle_tagged + junk:
            s.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
