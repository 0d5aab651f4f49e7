import type { Browser, Page } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, test, watchConsole } from "./fixtures";
import {
  createStaffIn,
  createTopic,
  expectNoReload,
  markDocument,
  PASSWORD,
  topicRow,
  uniqueName,
  waitForHydration,
} from "./helpers";

// This test runs its own server, because it restarts it in the middle.
const root = path.resolve(__dirname, "../..");
const port = Number(process.env.E2E_LIVE_PORT ?? 3101);
const base = `http://127.0.0.1:${port}`;

function startServer(database: string): Promise<ChildProcess> {
  const child = spawn(path.join(root, "target/debug/server"), [], {
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${database}`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: path.join(root, "target/site"),
      RUST_LOG: "warn",
      SIGNUPS_PER_IP_PER_HOUR: "10000",
      // No load balancer to wait for before stopping.
      SHUTDOWN_DRAIN_SECONDS: "0",
    },
    stdio: "ignore",
  });
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30_000;
    const poll = async () => {
      try {
        const response = await fetch(`${base}/healthz`);
        if (response.ok) return resolve(child);
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) return reject(new Error("server did not start"));
      setTimeout(poll, 100);
    };
    poll();
  });
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

async function logIn(browser: Browser, username: string, signUp: boolean): Promise<Page> {
  const context = await browser.newContext({ baseURL: base });
  const page = await context.newPage();
  watchConsole(page);
  await page.goto(signUp ? "/signup" : "/login");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: signUp ? "Create account" : "Log in" }).click();
  await expect(page).toHaveURL(/\/topics\/$/);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  return page;
}

const within = { timeout: 2_000 };

// While the server restarts, the pages' streams and the acting page's first tries find no
// server: the browser logs each refused connection. That is the situation under test.
test.use({ allowedConsole: [/net::ERR_CONNECTION_REFUSED/] });

test("an open page follows another user's changes without reload, across a restart", async ({
  browser,
}) => {
  test.setTimeout(90_000);
  const database = path.join(os.tmpdir(), `subscriptions-live-${process.pid}-${Date.now()}.db`);
  const pages: Page[] = [];
  let server = await startServer(database);
  try {
    const staff = uniqueName("a");
    createStaffIn(database, staff);
    const a = await logIn(browser, staff, false);
    pages.push(a);
    const b = await logIn(browser, uniqueName("b"), true);
    pages.push(b);
    await markDocument(b);

    const topic = uniqueName("Live ");
    await createTopic(a, topic);
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribers", "0", within);

    await topicRow(a, topic).getByRole("button", { name: "Subscribe" }).click();
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribers", "1", within);
    await expect(topicRow(b, topic)).toHaveAttribute("data-subscribed", "false");

    // The server restarts; both pages stay open and reconnect on their own.
    await stopServer(server);
    server = await startServer(database);

    const renamed = uniqueName("Renamed ");
    // The acting page may need a moment to see the server again.
    await expect(async () => {
      await topicRow(a, topic).getByRole("textbox").fill(renamed);
      await topicRow(a, topic).getByRole("button", { name: "Rename" }).click();
      await expect(topicRow(a, renamed)).toHaveCount(1, { timeout: 1_000 });
    }).toPass({ timeout: 15_000 });
    await expect(topicRow(b, renamed)).toHaveAttribute("data-subscribers", "1", within);
    await expect(topicRow(b, topic)).toHaveCount(0);

    await topicRow(a, renamed).getByRole("button", { name: "Delete" }).click();
    await expect(topicRow(b, renamed)).toHaveCount(0, within);

    await expectNoReload(b, "B's page was never reloaded");
  } finally {
    // Closed first: an open page would log its stream's refused reconnections.
    for (const page of pages) await page.context().close();
    await stopServer(server);
    for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(database + suffix, { force: true });
  }
});

/** What a page shows of each row: id, name, count and the user's flag. */
function rowsOf(page: Page) {
  return page.locator("[data-topic-id]").evaluateAll((items) =>
    items.map((item) => [
      item.getAttribute("data-topic-id"),
      item.getAttribute("data-topic-name"),
      item.getAttribute("data-subscribers"),
      item.getAttribute("data-subscribed"),
    ]),
  );
}

/** Clicks the row's Subscribe or Unsubscribe button and waits for the row to show the result. */
async function toggle(page: Page, name: string): Promise<void> {
  const row = topicRow(page, name);
  const was = await row.getAttribute("data-subscribed");
  await row.getByRole("button", { name: was === "true" ? "Unsubscribe" : "Subscribe" }).click();
  await expect(row).toHaveAttribute("data-subscribed", was === "true" ? "false" : "true");
}

test("a burst of others' writes patches an open page into what a reload shows, without refetching", async ({
  browser,
}) => {
  test.setTimeout(90_000);
  const database = path.join(os.tmpdir(), `subscriptions-patch-${process.pid}-${Date.now()}.db`);
  const pages: Page[] = [];
  const server = await startServer(database);
  try {
    const watcher = await logIn(browser, uniqueName("w"), true);
    pages.push(watcher);
    const listRequests: string[] = [];
    watcher.on("request", (request) => {
      if (request.url().includes("list_topics")) listRequests.push(request.url());
    });
    await markDocument(watcher);
    const others = [await logIn(browser, uniqueName("b"), true), await logIn(browser, uniqueName("c"), true)];
    pages.push(...others);
    // A second page of the watcher's own account: the watcher's flags move too.
    const ownOther = await watcher.context().newPage();
    watchConsole(ownOther);
    await ownOther.goto("/topics/");
    await waitForHydration(ownOther);

    const names = (await rowsOf(watcher)).slice(0, 4).map((row) => row[1] ?? "");
    expect(names.length).toBeGreaterThan(1);
    for (let round = 0; round < 3; round++) {
      for (const name of names) {
        for (const actor of [...others, ownOther]) await toggle(actor, name);
      }
    }

    const reload = await watcher.context().newPage();
    watchConsole(reload);
    await reload.goto("/topics/");
    const reloaded = await rowsOf(reload);
    await expect.poll(() => rowsOf(watcher), within).toEqual(reloaded);
    expect(
      reloaded.some((row) => row[3] === "true"),
      "the watcher's own flags were part of the burst",
    ).toBe(true);
    expect(listRequests, "counts and flags arrived as patches, not refetches").toEqual([]);
    await expectNoReload(watcher, "the watcher's page was never reloaded");
  } finally {
    for (const page of pages) await page.context().close();
    await stopServer(server);
    for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(database + suffix, { force: true });
  }
});

test("a filtered page follows its own rows live, and its stream follows the filter", async ({ browser }) => {
  test.setTimeout(90_000);
  const database = path.join(os.tmpdir(), `subscriptions-filter-${process.pid}-${Date.now()}.db`);
  const pages: Page[] = [];
  const server = await startServer(database);
  try {
    const other = await logIn(browser, uniqueName("o"), true);
    pages.push(other);
    const shown = uniqueName("Shown");
    const elsewhere = uniqueName("Elsewhere");
    await createTopic(other, shown);
    await createTopic(other, elsewhere);

    const watcher = await logIn(browser, uniqueName("w"), true);
    pages.push(watcher);
    const streams: string[] = [];
    const listRequests: string[] = [];
    watcher.on("request", (request) => {
      if (request.url().includes("/topics/events/")) streams.push(request.url());
      if (request.url().includes("list_topics")) listRequests.push(request.url());
    });
    await watcher.goto(`/topics/?q=${shown}`);
    await waitForHydration(watcher);
    await markDocument(watcher);
    await expect.poll(() => streams.at(-1) ?? "", within).toContain(`q=${shown}`);
    await expect(topicRow(watcher, elsewhere)).toHaveCount(0);

    await toggle(other, elsewhere);
    await toggle(other, shown);
    await expect(topicRow(watcher, shown)).toHaveAttribute("data-subscribers", "1", within);
    expect(listRequests, "the row was patched, not refetched").toEqual([]);
    await expectNoReload(watcher);
  } finally {
    for (const page of pages) await page.context().close();
    await stopServer(server);
    for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(database + suffix, { force: true });
  }
});
