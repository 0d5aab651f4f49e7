import type { Browser, Page } from "@playwright/test";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { expect, test, watchConsole } from "./fixtures";
import { createTopic, expectNoReload, markDocument, PASSWORD, topicRow, uniqueName } from "./helpers";

// Two instances of the server on one PostgreSQL database, each on its own port; a browser on
// each. The PostgreSQL server is the one the Rust tests use.
const root = path.resolve(__dirname, "../..");
const serverUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ports = [3102, 3103];

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

function psql(sql: string): void {
  execFileSync("psql", [serverUrl, "-v", "ON_ERROR_STOP=1", "-qc", sql], { stdio: "pipe" });
}

function startServer(database: string, port: number): Promise<ChildProcess> {
  const child = spawn(path.join(root, "target/debug/server"), [], {
    env: {
      ...process.env,
      DATABASE_URL: database,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: path.join(root, "target/site"),
      RUST_LOG: "warn",
      SIGNUPS_PER_IP_PER_HOUR: "10000",
      // No load balancer to wait for before stopping.
      SHUTDOWN_DRAIN_SECONDS: "0",
    },
    stdio: "ignore",
  });
  const base = `http://127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30_000;
    const poll = async () => {
      try {
        if ((await fetch(`${base}/healthz`)).ok) return resolve(child);
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) return reject(new Error(`server on ${port} did not start`));
      setTimeout(poll, 100);
    };
    poll();
  });
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

async function signUpOn(browser: Browser, port: number): Promise<Page> {
  const context = await browser.newContext({ baseURL: `http://127.0.0.1:${port}` });
  const page = await context.newPage();
  watchConsole(page);
  await page.goto("/signup");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("Username").fill(uniqueName("m"));
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/topics\/$/);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  return page;
}

const within = { timeout: 2_000 };

test("two browsers on two instances: B follows A's changes live", async ({ browser }) => {
  test.setTimeout(90_000);
  const name = `subs_e2e_${process.pid}_${Date.now()}`;
  psql(`CREATE DATABASE ${name}`);
  const database = withDatabase(serverUrl, name);
  const pages: Page[] = [];
  const servers: ChildProcess[] = [];
  try {
    // One after the other: the first creates the tables, the second finds them.
    for (const port of ports) servers.push(await startServer(database, port));
    const a = await signUpOn(browser, ports[0]);
    pages.push(a);
    const b = await signUpOn(browser, ports[1]);
    pages.push(b);
    await markDocument(b);

    const topic = uniqueName("Shared ");
    await createTopic(a, topic);
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribers", "0", within);

    await topicRow(a, topic).getByRole("button", { name: "Subscribe" }).click();
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribers", "1", within);
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribed", "false");

    // And the other way round: B's change reaches A's page on the first instance.
    await topicRow(b, topic).getByRole("button", { name: "Subscribe" }).click();
    await expect(topicRow(a, topic)).toHaveAttribute("data-subscribers", "2", within);
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribed", "true");

    await expectNoReload(b, "B's page was never reloaded");
  } finally {
    // Closed first: an open page would log its stream's refused reconnections.
    for (const page of pages) await page.context().close();
    for (const server of servers) await stopServer(server);
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
});
