#!/usr/bin/env python3
"""Fills a keyward SQLite database with synthetic analytics: EVENTS verification events of KEYS keys
over the last DAYS days, and the minute/hour/day/month rollups computed from them, as the event
writer would have left them. Prints the database's growth for the raw rows and for the rollups.

Usage: analytics_events.py DB_PATH WORKSPACE_ID EVENTS KEYS DAYS
The server must be stopped. Keys are `key_bench_<n>` (rows in the event tables only; analytics
never looks keys up), in KEYS // 1000 + 1 key spaces; about 1 in 20 events is RATE_LIMITED, 1 in
50 USAGE_EXCEEDED; a third of the events carry a tag.
"""
import json
import random
import sqlite3
import sys
import time

BATCH = 200_000


def size(conn):
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * conn.execute("PRAGMA page_size").fetchone()[0]


def main():
    path, workspace, events, keys, days = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    now = int(time.time() * 1000)
    span = days * 86_400_000
    rnd = random.Random(7)
    tags = ["[]", "[]", json.dumps(["plan=pro"])]
    before = size(conn)
    started = time.time()
    written = 0
    while written < events:
        n = min(BATCH, events - written)
        rows = []
        for i in range(n):
            k = rnd.randrange(keys)
            r = rnd.random()
            outcome = "RATE_LIMITED" if r < 0.05 else "USAGE_EXCEEDED" if r < 0.07 else "VALID"
            # In time order, as the event writer appends them.
            at = now - span + (written + i) * span // events
            rows.append((
                f"req_bench{written + i}", at, workspace, "api_bench",
                f"ks_bench{k % (keys // 1000 + 1)}", f"key_bench_{k}", None, outcome,
                tags[k % 3], 1 if outcome == "VALID" else 0, rnd.randrange(200, 2000), "",
                "bench", "api",
            ))
        conn.executemany(
            "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, key_space_id, "
            "key_id, identity_id, outcome, tags, spent_credits, latency_us, external_id, region, "
            "source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        written += n
    raw = size(conn) - before
    print(f"raw: {events} events in {time.time() - started:.0f}s, {raw / 2**20:.0f} MiB "
          f"({raw / events * 1e6 / 2**20:.0f} MiB per million events)")
    bucket = {
        "minute": "time_m - time_m % 60000",
        "hour": "time_m - time_m % 3600000",
        "day": "time_m - time_m % 86400000",
        # The first of the month, in ms, through SQLite's date functions.
        "month": "CAST(strftime('%s', time_m / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000",
    }
    for granularity, expression in bucket.items():
        before = size(conn)
        conn.execute(
            f"INSERT INTO key_verifications_per_{granularity} (workspace_id, time_m, key_space_id, "
            "key_id, identity_id, external_id, outcome, source, tags, total, spent_credits) "
            f"SELECT workspace_id, {expression}, key_space_id, key_id, COALESCE(identity_id, ''), "
            "external_id, outcome, source, tags, COUNT(*), SUM(spent_credits) "
            "FROM key_verifications GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9")
        conn.commit()
        rows = conn.execute(f"SELECT COUNT(*) FROM key_verifications_per_{granularity}").fetchone()[0]
        grown = size(conn) - before
        print(f"{granularity} rollup: {rows} rows, {grown / 2**20:.0f} MiB "
              f"({grown / events * 1e6 / 2**20:.1f} MiB per million events)")
    conn.execute("ANALYZE")
    conn.commit()


if __name__ == "__main__":
    main()
