#!/usr/bin/env python3
"""Measures what a crash can cost in credits, against a real release server on SQLite.

It creates a key with a large balance, drives verifications from several threads, then stops
the server either cleanly (SIGTERM) or by crash (SIGKILL) while requests are in flight. It then
compares the balance stored in the database with the number of verifications the server
acknowledged as VALID:

    lost = stored balance - (initial balance - acknowledged spends)

`lost` is the number of acknowledged spends that did not reach the disk (the key can be used that
many extra times after the restart). A clean stop must lose nothing; a crash may lose at most the
spends of the last ledger flush interval (100 ms).

Usage: bench/crash-credits.py [--seconds 5] [--threads 8] [--binary target/release/keyward]
"""

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import http.client

BALANCE = 10_000_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(binary, db, *args):
    out = subprocess.run([binary, "--database", db, "--log", "warn", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def post(port, root, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {root}", "Content-Type": "application/json"})
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data


def start(binary, db, port):
    proc = subprocess.Popen([binary, "--database", db, "--log", "warn", "serve", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/liveness")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def run(binary, how, seconds, threads):
    tmp = tempfile.mkdtemp(prefix="kw-crash-")
    path = os.path.join(tmp, "kw.db")
    db = f"sqlite://{path}"
    ws = cli(binary, db, "workspace", "create", "--name", "crash", "--json")["workspaceId"]
    root = cli(binary, db, "root-key", "create", "--workspace", ws, "--json")["key"]
    port = free_port()
    proc = start(binary, db, port)
    api = post(port, root, "/v2/apis.createApi", {"name": "crash"})["data"]["apiId"]
    created = post(port, root, "/v2/keys.createKey", {"apiId": api, "credits": {"remaining": BALANCE}})["data"]
    key_id, key = created["keyId"], created["key"]

    acknowledged = 0
    lock = threading.Lock()
    stop = threading.Event()

    def worker():
        nonlocal acknowledged
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = json.dumps({"key": key})
        headers = {"Authorization": f"Bearer {root}", "Content-Type": "application/json"}
        while not stop.is_set():
            try:
                conn.request("POST", "/v2/keys.verifyKey", body, headers)
                data = json.loads(conn.getresponse().read())
            except (OSError, http.client.HTTPException, ValueError):
                return
            if data.get("data", {}).get("code") == "VALID":
                with lock:
                    acknowledged += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    proc.wait()
    stop.set()
    for t in pool:
        t.join()

    stored = sqlite3.connect(path).execute("SELECT remaining_requests FROM keys WHERE id = ?", (key_id,)).fetchone()[0]
    expected = BALANCE - acknowledged
    lost = stored - expected
    rate = acknowledged / seconds
    return {
        "stop": "SIGKILL (crash)" if how == "kill" else "SIGTERM (clean)",
        "acknowledged": acknowledged,
        "stored_balance": stored,
        "expected_balance": expected,
        "lost_spends": lost,
        "lost_ms_of_traffic": round(1000 * lost / rate, 1) if rate else 0.0,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "keyward"))
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        raise SystemExit(f"no keyward binary at {args.binary}: run cargo build --release")
    for how in ("term", "kill", "kill", "kill"):
        r = run(args.binary, how, args.seconds, args.threads)
        print(f"{r['stop']:<16} acknowledged={r['acknowledged']:<7} stored={r['stored_balance']} "
              f"expected={r['expected_balance']} lost_spends={r['lost_spends']} (~{r['lost_ms_of_traffic']} ms of traffic)")
        if how == "term" and r["lost_spends"] != 0:
            print("FAIL: a clean stop lost acknowledged spends", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
