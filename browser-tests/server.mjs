// Starts a real `keyward serve` on a fresh SQLite database for the browser tests, and runs the
// CLI against the same database. The binary is KEYWARD_BIN (default <repo>/target/debug/keyward).

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.KEYWARD_BIN || path.join(here, "..", "target", "debug", "keyward"));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A running server: `{ url, database, rootKey, workspaceId, cli(...args), api(route, body, key?), stop() }`. */
export async function startKeyward() {
  const dir = mkdtempSync(path.join(tmpdir(), "keyward-browser-"));
  const database = `sqlite://${path.join(dir, "kw.db")}`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    BIN,
    ["--database", database, "--log", "warn", "serve", "--listen", `127.0.0.1:${port}`,
     "--analytics-rollup-interval", "1s", "--last-used-interval", "200ms"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c) => { stdout += c; });
  child.stderr.setEncoding("utf8").on("data", (c) => { stderr += c; });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`keyward exited: ${stderr}`);
    try {
      const res = await fetch(`${url}/v2/liveness`);
      if (res.ok && /root key:/.test(stdout)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`keyward did not start: ${stderr}`);
    await sleep(100);
  }
  const rootKey = stdout.match(/root key:\s+(\S+)/)[1];
  const workspaceId = stdout.match(/workspace:\s+(\S+)/)[1];

  const cli = (...args) =>
    execFileSync(BIN, ["--database", database, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const api = async (route, body, key = rootKey) => {
    const res = await fetch(`${url}/v2/${route}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const stop = async () => {
    process.removeListener("exit", killOnExit);
    child.kill("SIGTERM");
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, database, rootKey, workspaceId, cli, api, stop, output: () => stderr };
}
