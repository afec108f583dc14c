"""Splits a host's perf samples into the parts of a request, for bench/profile.sh.

Reads `perf script` output (cpu-clock samples with call chains, leaf first) on stdin and
prints a Markdown table: each part's share of the samples and, given the host's measured CPU
per request (--us-per-request), its microseconds per request. Each sample goes to the part
of the frame nearest its leaf that belongs to one; the allocator and libc's memory routines
belong to their caller. A sample in the kernel goes to a kernel part by what the kernel was
doing (page faults and madvise, sockets and epoll, futexes and scheduling).

    perf script -i perf.data | python3 bench/attribute.py --us-per-request 87
"""

import argparse
import re
import sys
from collections import Counter

# (part, test on a frame's symbol and object), nearest the leaf first wins.
USER_PARTS = [
    # JIT code: the guest, compiled (perf names its object after a perf map file).
    ("guest code (Wasm)", lambda sym, dso: dso.startswith(("[JIT]", "/tmp/perf-"))),
    ("Redis client (redis-rs)", lambda sym, dso: sym.startswith(("redis::", "<redis::", "combine::", "<combine::"))),
    ("guest imports (host side)", lambda sym, dso: "tokenginx_host::runtime::imports" in sym or "tokenginx_host::contract" in sym),
    ("wasmtime: instantiate, call, teardown", lambda sym, dso: "wasmtime" in sym or "tokenginx_host::runtime" in sym),
    ("HTTP/1.1 (hyper)", lambda sym, dso: re.match(r"<?(hyper|hyper_util|http|httparse|h2)(::|\b)", sym) is not None),
    ("routes, form checks, responses", lambda sym, dso: "tokenginx_host::http" in sym),
    ("logging (tracing)", lambda sym, dso: "tracing" in sym),
    ("metrics (prometheus)", lambda sym, dso: "prometheus" in sym),
    ("tokio scheduler and I/O driver", lambda sym, dso: re.match(r"<?(tokio|mio)::", sym) is not None),
    ("host, other", lambda sym, dso: "tokenginx_host" in sym),
]
# Frames that belong to whoever called them.
TRANSPARENT = re.compile(r"(jemalloc|_rjem_|^je_|^mem(cpy|move|set|cmp)|^__mem|^_?_?libc_|^alloc::|^core::|^<alloc::|^<core::|^std::|^<std::)")

KERNEL_PARTS = [
    ("kernel: page faults, madvise, mmap", ("page_fault", "handle_mm_fault", "madvise", "do_anonymous_page", "mmap", "munmap", "zap_", "flush_tlb", "clear_page")),
    ("kernel: sockets, TCP and epoll", ("tcp_", "sock_", "sys_sendto", "sys_recvfrom", "sys_read", "sys_write", "epoll", "inet_", "ip_", "skb", "net_rx", "__napi", "loopback")),
    ("kernel: futexes and scheduling", ("futex", "schedule", "try_to_wake_up", "finish_task_switch", "pick_next")),
]


def samples(lines):
    """Each sample's frames as (symbol, object), leaf first."""
    frames = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames is not None:
                yield frames
            frames = None
            continue
        if not line.startswith((" ", "\t")):
            frames = []
            continue
        if frames is None:
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
            frames.append((sym, m.group(2)))
    if frames:
        yield frames


def part(frames):
    if frames and frames[0][1] == "[kernel.kallsyms]":
        kernel = " ".join(sym for sym, dso in frames if dso == "[kernel.kallsyms]")
        for name, needles in KERNEL_PARTS:
            if any(n in kernel for n in needles):
                return name
        return "kernel: other"
    for sym, dso in frames:
        if dso == "[kernel.kallsyms]" or TRANSPARENT.search(sym):
            continue
        for name, test in USER_PARTS:
            if test(sym, dso):
                return name
    return "allocator, libc and unresolved frames"


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--us-per-request", type=float, required=True)
    us = args.parse_args().us_per_request
    counts = Counter(part(frames) for frames in samples(sys.stdin))
    total = sum(counts.values())
    print(f"| part | share of the host's CPU | µs per request |")
    print("|---|---|---|")
    for name, n in counts.most_common():
        print(f"| {name} | {100 * n / total:.1f}% | {us * n / total:.1f} |")
    print(f"| **total** ({total} samples) | 100% | {us:.1f} |")


if __name__ == "__main__":
    main()
