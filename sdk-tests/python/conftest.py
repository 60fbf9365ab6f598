"""Fixtures: one real `keyward serve` per test session, bootstrapped through the CLI.

The binary is taken from env KEYWARD_BIN (default: <repo>/target/debug/keyward). The server runs
on a free port over a fresh SQLite database in a temp dir, which is removed afterwards unless
KEYWARD_SDK_TEST_KEEP=1. KEYWARD_SDK_TEST_VERBOSE=1 echoes the server's output when it stops.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from unkey.py import Unkey
from unkey.py.utils import BackoffStrategy, RetryConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KEYWARD_BIN = Path(os.environ.get("KEYWARD_BIN") or REPO / "target" / "debug" / "keyward").resolve()

# Retries off, so a 5xx or a refused connection fails the test at once instead of after the
# SDK's default backoff of up to 10 s.
NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False)


def cli(database_url: str, *args: str) -> str:
    """Runs `keyward --database URL ...args` and returns its stdout; raises with stderr on failure."""
    argv = [str(KEYWARD_BIN), "--database", database_url, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode})\nstderr: {done.stderr}\nstdout: {done.stdout}"
        )
    return done.stdout


def cli_json(database_url: str, *args: str) -> dict:
    """Runs a CLI command with `--json` and parses the last JSON line it printed."""
    out = cli(database_url, *args, "--json").strip()
    for line in reversed(out.splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    raise AssertionError(f"expected JSON on stdout, got {out!r}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    database_url: str
    workspace_id: str
    root_key: str

    def client(self, root_key: str | None = None) -> Unkey:
        """An SDK client for this server, as a user would make it (`server_url`), retries off."""
        return Unkey(
            root_key=root_key or self.root_key,
            server_url=self.url,
            retry_config=NO_RETRIES,
            timeout_ms=10_000,
        )

    def create_root_key(self, *permissions: str) -> dict:
        """A new root key of this workspace holding exactly `permissions` (none: every one):
        `{"keyId": ..., "key": "unkey_..."}`."""
        args = ["root-key", "create", "--workspace", self.workspace_id]
        for p in permissions:
            args += ["--permission", p]
        out = cli_json(self.database_url, *args)
        assert out["key"].startswith("unkey_"), out
        return out

    def cli(self, *args: str) -> str:
        return cli(self.database_url, *args)


@pytest.fixture(scope="session")
def server():
    if not KEYWARD_BIN.is_file():
        pytest.exit(f"keyward binary not found at {KEYWARD_BIN}; run cargo build or set KEYWARD_BIN", 2)
    tmp = Path(tempfile.mkdtemp(prefix="keyward-sdk-py-"))
    database_url = f"sqlite://{tmp / 'kw.db'}"
    workspace_id = cli_json(database_url, "workspace", "create", "--name", "python-sdk")["workspaceId"]
    assert workspace_id.startswith("ws_")
    root_key = cli_json(database_url, "root-key", "create", "--workspace", workspace_id)["key"]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "serve.log", "w+b")
    child = subprocess.Popen(
        [str(KEYWARD_BIN), "--database", database_url, "serve", "--listen", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def output() -> str:
        log.flush()
        return (tmp / "serve.log").read_text(errors="replace")

    try:
        deadline = time.monotonic() + 10
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"keyward serve exited ({child.returncode}) before it was ready\n{output()}")
            try:
                with urllib.request.urlopen(f"{url}/v2/liveness", timeout=1) as res:
                    if res.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"keyward serve not ready after 10 s\n{output()}")
            time.sleep(0.05)

        yield Server(url=url, database_url=database_url, workspace_id=workspace_id, root_key=root_key)
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if os.environ.get("KEYWARD_SDK_TEST_VERBOSE"):
            print(output())
        log.close()
        if os.environ.get("KEYWARD_SDK_TEST_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def unkey(server: Server):
    with server.client() as sdk:
        yield sdk


_counter = itertools.count(1)


@pytest.fixture(scope="session")
def unique() -> Callable[[str], str]:
    """`unique("label")` gives a name no other test of this run uses."""
    return lambda label: f"{label}_{os.getpid()}_{next(_counter)}"


@pytest.fixture(scope="session")
def api_id(unkey: Unkey) -> str:
    """An API shared by the tests that only need somewhere to create keys."""
    res = unkey.apis.create_api(name="python-sdk-shared")
    assert res.data.api_id.startswith("api_")
    return res.data.api_id
