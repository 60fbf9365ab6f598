"""Summarises a folded-stack profile (one `frame;frame;...;leaf COUNT` line per stack, as
inferno-collapse-perf writes it): where the CPU went, by component and by function.

Usage: python3 bench/profile_summary.py FOLDED [TOP]

Prints three tables, each as a share of all samples:
1. self time by component (the kernel, hyper, tokio, axum, the allocator, SQLite, keyward's own
   layers...), from each stack's leaf frame;
2. the TOP functions by self time;
3. the TOP keyward functions by inclusive time (a function counted once per stack it is on).
Standard library only; not a test.
"""

import collections
import re
import sys

# (pattern on the leaf frame, component), first match wins.
COMPONENTS = [
    (r"clock_gettime|__vdso|Timespec>::now|Instant>::now", "clock reads"),
    (r"_\[k\]$|^\[unknown\]$|^(entry_SYSCALL|do_syscall|__x64_sys|tcp_|ip_|__tcp|sock_|skb_|__skb|"
     r"_raw_spin|finish_task_switch|__schedule|schedule|net_rx|__napi|process_backlog|__netif|"
     r"__dev_queue|irqentry|asm_|native_|syscall_exit|ep_|do_epoll|__fget|fput|copy_|_copy_)",
     "kernel (syscalls, loopback TCP, scheduling)"),
    (r"sqlite3|rusqlite|^(vdbe|balance|btree|pager|wal|yy_|walChecksum|dbMalloc|pcache)", "SQLite (event writer, store)"),
    (r"^(_?mi_|mi_)|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|^(malloc|free|_int_malloc|_int_free|cfree)$",
     "allocator"),
    (r"^__mem(move|cpy|set|cmp|chr)|^__strlen|^__memcmp", "libc memcpy/memcmp"),
    (r"^(__GI_|__libc_|pthread_|__lll_|lll_|futex|syscall$|epoll_wait|__send|__recv|writev|readv)",
     "libc (syscall wrappers, locks)"),
    (r"httparse|hyper::", "hyper (HTTP/1 parse and write)"),
    (r"tokio::|mio::|parking_lot", "tokio (scheduler, I/O driver, timers)"),
    (r"axum|tower|matchit", "axum and tower (routing, extractors)"),
    (r"serde_json|serde::|serde_core", "serde_json"),
    (r"sha2|digest::|Sha256", "SHA-256"),
    (r"hashbrown|core::hash|sip::|foldhash", "hash maps"),
    (r"metrics|quanta", "metrics"),
    (r"tracing", "tracing"),
    (r"keyward::store", "keyward store"),
    (r"keyward::domain::events", "keyward event writer"),
    (r"keyward::domain", "keyward domain"),
    (r"keyward::http", "keyward http layer"),
    (r"keyward::", "keyward (other)"),
    (r"^(http::|bytes::|http_body)", "http and bytes types"),
    (r"std::sync::mpmc", "keyward event queue (std channel)"),
    (r"atomic_waker|futures_util|core::future|crossbeam", "futures and wakers"),
    (r"std::|core::|alloc::", "Rust std (strings, iterators, once)"),
]
COMPILED = [(re.compile(p), name) for p, name in COMPONENTS]


def component(frame):
    for pattern, name in COMPILED:
        if pattern.search(frame):
            return name
    return "other"


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    total = 0
    by_component = collections.Counter()
    by_self = collections.Counter()
    inclusive = collections.Counter()
    for line in open(path, encoding="utf-8", errors="replace"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        by_component[component(leaf)] += n
        by_self[leaf] += n
        for frame in set(f for f in frames if f.startswith("keyward::") or "<keyward::" in f):
            inclusive[frame] += n
    if total == 0:
        print("no samples")
        return

    def table(title, counter, limit):
        print(title)
        for name, n in counter.most_common(limit):
            print(f"  {100 * n / total:5.1f}%  {name[:150]}")

    print(f"total weight {total} (the sum of perf's sample periods)")
    table("self time by component:", by_component, len(by_component))
    table(f"top {top} functions by self time:", by_self, top)
    table(f"top {top} keyward functions by inclusive time:", inclusive, top)


if __name__ == "__main__":
    main()
