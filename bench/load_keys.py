#!/usr/bin/env python3
"""Inserts COUNT keys straight into keyward's `keys` table, in one transaction.

Usage: load_keys.py DB_PATH API_ID COUNT KEYFILE
       load_keys.py postgres://USER@HOST:PORT/DB API_ID COUNT KEYFILE

SQLite (a file path): the server must be stopped. PostgreSQL (a URL): the rows go through psql's
`\\copy` (one COPY, one transaction); servers may run, since no cache holds keys nobody has verified
yet. Each key is `bk_` + 32 hex characters (16 random bytes); the row holds what keyward stores
for it: `hash` = standard base64 of its SHA-256, `start` = `bk_` + the first four characters.
The plaintexts go to KEYFILE, one a line, in insertion order.
"""
import base64
import hashlib
import io
import os
import sqlite3
import subprocess
import sys
import time

ALPHANUMERIC = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Maps any byte to an alphanumeric (slightly biased, which does not matter for benchmark ids).
TO_ALNUM = bytes(ALPHANUMERIC[b % len(ALPHANUMERIC)] for b in range(256))
BATCH = 50_000


def generate(count, key_space_id, workspace_id, now_ms):
    """Yields (rows, plaintexts) in batches: rows as the `keys` columns id, key_space_id,
    workspace_id, hash, start, created_at_m."""
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        secrets = os.urandom(16 * n).hex()
        ids = os.urandom(16 * n).translate(TO_ALNUM).decode()
        rows = []
        lines = []
        for j in range(n):
            key = "bk_" + secrets[32 * j: 32 * j + 32]
            digest = base64.b64encode(hashlib.sha256(key.encode()).digest()).decode()
            rows.append(("key_" + ids[16 * j: 16 * j + 16], key_space_id, workspace_id,
                         digest, key[:7], now_ms))
            lines.append(key)
        yield rows, lines
        done += n


def psql(url, *args, stdin=None):
    result = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atq", *args],
                            input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"load_keys: psql failed: {result.stderr.strip()}")
    return result.stdout


def load_postgres(url, api_id, count, keyfile):
    if "'" in api_id:
        sys.exit("load_keys: bad API id")
    row = psql(url, "-c", f"SELECT key_space_id, workspace_id FROM apis WHERE id = '{api_id}'").strip()
    if not row:
        sys.exit(f"load_keys: no API {api_id} in {url}")
    key_space_id, workspace_id = row.split("|")
    now_ms = int(time.time() * 1000)
    started = time.monotonic()
    data = io.StringIO()
    with open(keyfile, "w") as out:
        for rows, lines in generate(count, key_space_id, workspace_id, now_ms):
            for r in rows:
                data.write("\t".join(str(v) for v in r))
                data.write("\t1\n")
            out.write("\n".join(lines))
            out.write("\n")
    # One COPY is one transaction.
    psql(url, "-c", "\\copy keys (id, key_space_id, workspace_id, hash, start, created_at_m, enabled) "
         "FROM pstdin", stdin=data.getvalue())
    total = psql(url, "-c", f"SELECT count(*) FROM keys WHERE key_space_id = '{key_space_id}'").strip()
    print(f"load_keys: inserted {count} keys in {time.monotonic() - started:.1f}s "
          f"({total} keys now in key space {key_space_id})")


def main():
    db_path, api_id, count, keyfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if db_path.startswith(("postgres://", "postgresql://")):
        load_postgres(db_path, api_id, count, keyfile)
        return
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    row = db.execute("SELECT key_space_id, workspace_id FROM apis WHERE id = ?", (api_id,)).fetchone()
    if row is None:
        sys.exit(f"load_keys: no API {api_id} in {db_path}")
    key_space_id, workspace_id = row
    now_ms = int(time.time() * 1000)
    started = time.monotonic()
    db.execute("BEGIN")
    with open(keyfile, "w") as out:
        for rows, lines in generate(count, key_space_id, workspace_id, now_ms):
            db.executemany(
                "INSERT INTO keys (id, key_space_id, workspace_id, hash, start, created_at_m, enabled) "
                "VALUES (?, ?, ?, ?, ?, ?, 1)",
                rows,
            )
            out.write("\n".join(lines))
            out.write("\n")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = db.execute("SELECT count(*) FROM keys WHERE key_space_id = ?", (key_space_id,)).fetchone()[0]
    db.close()
    print(f"load_keys: inserted {count} keys in {time.monotonic() - started:.1f}s "
          f"({total} keys now in key space {key_space_id})")


if __name__ == "__main__":
    main()
