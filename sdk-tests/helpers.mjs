// Test helpers: run the keyward CLI, start and stop `keyward serve`, and check SDK errors.
//
// The binary is taken from env KEYWARD_BIN (default: <repo>/target/debug/keyward).
// Set KEYWARD_SDK_TEST_VERBOSE=1 to echo the server's output, KEYWARD_SDK_TEST_KEEP=1 to keep the temp dir.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { HTTPClient, Unkey } from "@unkey/api";

const here = path.dirname(fileURLToPath(import.meta.url));

export const KEYWARD_BIN = path.resolve(
  process.env.KEYWARD_BIN || path.join(here, "..", "target", "debug", "keyward"),
);

const verbose = Boolean(process.env.KEYWARD_SDK_TEST_VERBOSE);

export { sleep };

/** Fails with a clear message when the server binary is missing. */
export function requireBinary() {
  if (!existsSync(KEYWARD_BIN)) {
    throw new Error(
      `keyward binary not found at ${KEYWARD_BIN}; build it (cargo build) or set KEYWARD_BIN`,
    );
  }
}

/** A fresh temp dir and a SQLite database URL inside it. */
export function freshDatabase() {
  const dir = mkdtempSync(path.join(tmpdir(), "keyward-sdk-"));
  const file = path.join(dir, "kw.db");
  const remove = () => {
    if (!process.env.KEYWARD_SDK_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  // Also removed if the run is interrupted before `cleanup` runs.
  process.once("exit", remove);
  return {
    dir,
    url: `sqlite://${file}`,
    cleanup() {
      process.removeListener("exit", remove);
      if (process.env.KEYWARD_SDK_TEST_KEEP) console.log(`# kept ${dir}`);
      remove();
    },
  };
}

/** Runs `keyward --database URL ...args` and returns its stdout. Throws with stderr on failure. */
export function cli(databaseUrl, ...args) {
  const argv = ["--database", databaseUrl, ...args];
  try {
    return execFileSync(KEYWARD_BIN, argv, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
  } catch (err) {
    const stderr = err.stderr ? String(err.stderr).trim() : "";
    const stdout = err.stdout ? String(err.stdout).trim() : "";
    throw new Error(
      `keyward ${argv.join(" ")} failed (status ${err.status ?? err.signal ?? "?"})` +
        (stderr ? `\nstderr: ${stderr}` : "") +
        (stdout ? `\nstdout: ${stdout}` : ""),
    );
  }
}

/** Parses a CLI's JSON stdout: the whole output, or else its last line that looks like JSON. */
export function parseJson(stdout) {
  const text = stdout.trim();
  try {
    return JSON.parse(text);
  } catch {
    const line = text
      .split("\n")
      .map((l) => l.trim())
      .reverse()
      .find((l) => l.startsWith("{"));
    if (line !== undefined) {
      try {
        return JSON.parse(line);
      } catch {
        // fall through
      }
    }
    throw new Error(`expected JSON on stdout, got: ${JSON.stringify(stdout)}`);
  }
}

/** Runs a CLI command with `--json` appended and parses its output. */
export function cliJson(databaseUrl, ...args) {
  return parseJson(cli(databaseUrl, ...args, "--json"));
}

/** `workspace create`, returns the workspace id. */
export function createWorkspace(databaseUrl, name) {
  const out = cliJson(databaseUrl, "workspace", "create", "--name", name);
  assert.match(out.workspaceId ?? "", /^ws_/, `workspace create printed ${JSON.stringify(out)}`);
  return out.workspaceId;
}

/** `root-key create`, returns `{keyId, key}`. No permissions = every permission. */
export function createRootKey(databaseUrl, workspaceId, { name, permissions = [] } = {}) {
  const args = ["root-key", "create", "--workspace", workspaceId];
  if (name) args.push("--name", name);
  for (const p of permissions) args.push("--permission", p);
  const out = cliJson(databaseUrl, ...args);
  assert.equal(typeof out.keyId, "string", `root-key create printed ${JSON.stringify(out)}`);
  assert.match(out.key ?? "", /^unkey_/, `root-key create printed ${JSON.stringify(out)}`);
  return out;
}

/** Asks the OS for a free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `keyward --database URL serve --listen 127.0.0.1:PORT` and waits until
 * `GET /v2/liveness` answers 200 (up to `readyTimeoutMs`).
 * Returns `{ url, port, child, output(), stop() }`.
 */
export async function startServer(databaseUrl, { readyTimeoutMs = 10_000, args = [] } = {}) {
  requireBinary();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    KEYWARD_BIN,
    // Short lastUsedAt and rollup intervals, so tests see them without waiting the defaults.
    ["--database", databaseUrl, "serve", "--listen", `127.0.0.1:${port}`, "--last-used-interval", "200ms",
     "--analytics-rollup-interval", "1s", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );

  // Keep the tail of the server's output for diagnostics.
  const lines = [];
  const collect = (stream, tag) => {
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(`[${tag}] ${line}`);
        if (lines.length > 300) lines.shift();
        if (verbose) console.log(`# keyward ${tag}: ${line}`);
      }
    });
  };
  collect(child.stdout, "out");
  collect(child.stderr, "err");
  const output = () => lines.join("\n");

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  let spawnError = null;
  child.once("error", (err) => {
    spawnError = err;
  });

  // Never leave a server behind if the test process dies.
  const killOnExit = () => {
    if (exitInfo === null) child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  // ... nor if it is interrupted (Ctrl-C, or `node --test` stopping the file).
  const onSignal = (signal) => {
    killOnExit();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.once(sig, onSignal);

  const stop = async ({ timeoutMs = 10_000 } = {}) => {
    process.removeListener("exit", killOnExit);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.removeListener(sig, onSignal);
    if (exitInfo !== null || spawnError) return exitInfo;
    child.kill("SIGTERM");
    const timer = new AbortController();
    const result = await Promise.race([
      exited,
      sleep(timeoutMs, null, { signal: timer.signal }).catch(() => null),
    ]);
    timer.abort(); // do not keep the test process alive for the rest of the timeout
    if (result === null) {
      child.kill("SIGKILL");
      await exited;
      throw new Error(
        `keyward serve did not exit within ${timeoutMs} ms of SIGTERM (killed)\n${output()}`,
      );
    }
    return result;
  };

  const deadline = Date.now() + readyTimeoutMs;
  let lastProblem = "no attempt yet";
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`could not spawn ${KEYWARD_BIN}: ${spawnError.message}`);
    if (exitInfo !== null) {
      throw new Error(
        `keyward serve exited before becoming ready (code ${exitInfo.code}, signal ${exitInfo.signal})\n${output()}`,
      );
    }
    try {
      const res = await fetch(`${url}/v2/liveness`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200) {
        await res.arrayBuffer();
        return { url, port, child, output, stop };
      }
      lastProblem = `liveness answered ${res.status}`;
    } catch (err) {
      lastProblem = err.cause?.code ?? err.message;
    }
    await sleep(100);
  }
  await stop().catch(() => {});
  throw new Error(
    `keyward serve not ready after ${readyTimeoutMs} ms (${lastProblem})\n${output()}`,
  );
}

/**
 * An SDK client for the local server. Retries are off so that a 5xx or a dropped
 * connection shows up at once instead of after the SDK's 10 s backoff.
 */
export function client(serverUrl, rootKey) {
  return new Unkey({
    rootKey,
    serverURL: serverUrl,
    retryConfig: { strategy: "none" },
    timeoutMs: 10_000,
  });
}

/** Every error `type` URL seen by `expectSdkError`, for the docs-page test. */
export const seenErrorTypes = new Set();

/**
 * Awaits `promise`, which must reject with an instance of `ErrorClass`, and checks the
 * HTTP status, the body's `status`, the `type` URL's suffix, the title and a non-empty detail.
 * `typeSuffix` is e.g. "unkey/data/api_not_found" (checked as "/docs/errors/<typeSuffix>").
 * Returns the error.
 */
export async function expectSdkError(promise, { errorClass, status, typeSuffix, title }) {
  let err;
  try {
    const value = await promise;
    assert.fail(
      `expected ${errorClass.name} (${status} ${typeSuffix}), but the call succeeded: ${JSON.stringify(value)}`,
    );
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(
    err instanceof errorClass,
    `expected ${errorClass.name}, got ${err?.name}: ${err?.message}` +
      (err?.body !== undefined ? `\nbody: ${err.body}` : "") +
      (err?.cause ? `\ncause: ${err.cause}` : ""),
  );
  const body = err.data$?.error ?? err.error;
  const desc = `${errorClass.name} body ${err.body}`;
  assert.equal(err.statusCode, status, `HTTP status; ${desc}`);
  assert.ok(body, `parsed error body missing; ${desc}`);
  assert.equal(body.status, status, `error.status; ${desc}`);
  assert.equal(typeof body.type, "string", `error.type; ${desc}`);
  assert.ok(
    body.type.endsWith(`/docs/errors/${typeSuffix}`),
    `error.type ${JSON.stringify(body.type)} should end with /docs/errors/${typeSuffix}; ${desc}`,
  );
  assert.equal(body.title, title, `error.title; ${desc}`);
  assert.equal(typeof body.detail, "string", `error.detail; ${desc}`);
  assert.ok(body.detail.trim().length > 0, `error.detail should be non-empty; ${desc}`);
  assert.match(err.data$?.meta?.requestId ?? "", /^req_/, `meta.requestId; ${desc}`);
  seenErrorTypes.add(body.type);
  return err;
}

/**
 * Calls `fn` every `intervalMs` until `check(result)` returns true or `withinMs` has passed
 * since the start. `fn` may throw; its error is passed to `check` as `{ error }`,
 * a value as `{ value }`. Returns `{ elapsedMs, attempts, last }`; throws on timeout.
 */
export async function pollUntil(fn, check, { withinMs = 1_000, intervalMs = 100, what = "condition" } = {}) {
  const start = Date.now();
  let attempts = 0;
  let last;
  for (;;) {
    attempts += 1;
    try {
      last = { value: await fn() };
    } catch (error) {
      last = { error };
    }
    const elapsed = Date.now() - start;
    if (check(last)) return { elapsedMs: elapsed, attempts, last };
    if (elapsed >= withinMs) {
      const got = last.error
        ? `${last.error.name}: ${last.error.body ?? last.error.message}`
        : JSON.stringify(last.value);
      throw new assert.AssertionError({
        message: `${what} not reached within ${withinMs} ms (${attempts} attempts); last result: ${got}`,
      });
    }
    // The last attempt is made at the deadline itself.
    await sleep(Math.min(intervalMs, withinMs - elapsed));
  }
}

/** `migration create --algorithm ALG`, returns the migration id. */
export function createMigration(databaseUrl, workspaceId, algorithm) {
  const out = cliJson(databaseUrl, "migration", "create", "--workspace", workspaceId, "--algorithm", algorithm);
  assert.match(out.migrationId ?? "", /^mig_/, `migration create printed ${JSON.stringify(out)}`);
  return out.migrationId;
}

/** `api whitelist API [IP...]`: only these client IPs may verify the API's keys; no IPs clears. */
export function whitelistApi(databaseUrl, apiId, ...ips) {
  return cli(databaseUrl, "api", "whitelist", apiId, ...ips);
}

/**
 * Like `client`, but every exchange is recorded as it went over the wire:
 * `{ method, url, path, requestBody, status, responseBody }` (bodies as text).
 * Returns `{ sdk, exchanges, last(path?), lastJson(path?) }`; `path` is e.g. "/v2/keys.getKey".
 */
export function recordingClient(serverUrl, rootKey) {
  const exchanges = [];
  const fetcher = async (input, init) => {
    const req = input instanceof Request && init === undefined ? input : new Request(input, init);
    const requestBody = req.body === null ? "" : await req.clone().text();
    const res = await fetch(req);
    const responseBody = await res.clone().text();
    const url = new URL(req.url);
    exchanges.push({ method: req.method, url: req.url, path: url.pathname, requestBody, status: res.status, responseBody });
    return res;
  };
  const sdk = new Unkey({
    rootKey,
    serverURL: serverUrl,
    retryConfig: { strategy: "none" },
    timeoutMs: 10_000,
    httpClient: new HTTPClient({ fetcher }),
  });
  const last = (path) => {
    const found = path === undefined ? exchanges.at(-1) : exchanges.findLast((e) => e.path === path);
    assert.ok(found, `no recorded exchange${path ? ` for ${path}` : ""}`);
    return found;
  };
  const lastJson = (path) => JSON.parse(last(path).responseBody);
  return { sdk, exchanges, last, lastJson };
}

/**
 * Awaits `promise`, which must reject with an SDK error (any `UnkeyError`, including the generic
 * `APIError` used for statuses the SDK has no model for), and checks the wire body's envelope:
 * HTTP status, `error.status`, the `type` URL's suffix, the title, a detail and `meta.requestId`.
 * Returns `{ err, body }` with `body` the parsed JSON.
 */
export async function expectHttpError(promise, { status, typeSuffix, title }) {
  let err;
  try {
    const value = await promise;
    assert.fail(`expected HTTP ${status} (${typeSuffix}), but the call succeeded: ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.equal(typeof err?.statusCode, "number", `expected an SDK HTTP error, got ${err?.name}: ${err?.message}`);
  const desc = `${err.name} body ${err.body}`;
  assert.equal(err.statusCode, status, `HTTP status; ${desc}`);
  let body;
  try {
    body = JSON.parse(err.body);
  } catch {
    assert.fail(`error body is not JSON; ${desc}`);
  }
  assert.equal(body?.error?.status, status, `error.status; ${desc}`);
  assert.equal(typeof body.error.type, "string", `error.type; ${desc}`);
  assert.ok(
    body.error.type.endsWith(`/docs/errors/${typeSuffix}`),
    `error.type ${JSON.stringify(body.error.type)} should end with /docs/errors/${typeSuffix}; ${desc}`,
  );
  assert.equal(body.error.title, title, `error.title; ${desc}`);
  assert.equal(typeof body.error.detail, "string", `error.detail; ${desc}`);
  assert.ok(body.error.detail.trim().length > 0, `error.detail should be non-empty; ${desc}`);
  assert.match(body.meta?.requestId ?? "", /^req_/, `meta.requestId; ${desc}`);
  seenErrorTypes.add(body.error.type);
  return { err, body };
}

/** `namespace delete --workspace WS NAME_OR_ID`: rate-limit calls answer 410 for it from then on. */
export function deleteNamespace(databaseUrl, workspaceId, nameOrId) {
  return cli(databaseUrl, "namespace", "delete", "--workspace", workspaceId, nameOrId);
}
