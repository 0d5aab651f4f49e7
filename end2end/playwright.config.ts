import { defineConfig } from "@playwright/test";
import * as os from "node:os";
import * as path from "node:path";

// The tests start their own server (the debug build that `cargo xtask build` made) on its own
// port with a fresh database file, so they never touch a developer's data/app.db.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;
// Set once in the main process; the test workers inherit it (tests create staff accounts in it).
process.env.E2E_DATABASE ??= path.join(os.tmpdir(), `subscriptions-e2e-${process.pid}.db`);
const database = process.env.E2E_DATABASE;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  // The debug wasm hydrates slowly on a loaded CI machine; a passing wait returns at once.
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      // Debian's chromium: Playwright must never download a browser of its own.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: {
    command: `rm -f "${database}" "${database}-wal" "${database}-shm" && ../target/debug/server`,
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: "ignore",
    stderr: "pipe",
    env: {
      DATABASE_URL: `sqlite://${database}`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: "../target/site",
      RUST_LOG: "warn",
      // The suite signs many people up from 127.0.0.1.
      SIGNUPS_PER_IP_PER_HOUR: "10000",
      // No load balancer to wait for before stopping.
      SHUTDOWN_DRAIN_SECONDS: "0",
    },
  },
});
