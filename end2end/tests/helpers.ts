import { expect, type Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import * as path from "node:path";

export const PASSWORD = "correct horse battery";

/** A username no other test of this run uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Waits until the wasm app has taken over the server-rendered page. */
export async function waitForHydration(page: Page): Promise<void> {
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
}

export async function signUp(page: Page, username: string, javaScript = true): Promise<void> {
  await page.goto("/signup");
  if (javaScript) await waitForHydration(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/topics\/$/);
}

export async function logIn(page: Page, username: string, password = PASSWORD): Promise<void> {
  await page.goto("/login");
  await waitForHydration(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

export function topicNames(page: Page) {
  return page.locator("[data-topic-id]").evaluateAll((items) =>
    items.map((item) => item.getAttribute("data-topic-name")),
  );
}

/** Creates a staff account with the server's CLI, in the database the test server uses. */
export function createStaff(username: string): void {
  createStaffIn(process.env.E2E_DATABASE ?? "", username);
}

export function createStaffIn(database: string, username: string): void {
  const binary = path.resolve(__dirname, "../../target/debug/server");
  execFileSync(binary, ["create-user", username, "--staff"], {
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${database}`,
      SUBSCRIPTIONS_PASSWORD: PASSWORD,
      RUST_LOG: "warn",
    },
  });
}

export function topicRow(page: Page, name: string) {
  return page.locator(`[data-topic-name="${name}"]`);
}

/** Logs a new staff account in, on a hydrated topic page. */
export async function staffOnTopics(page: Page, prefix: string): Promise<void> {
  const staff = uniqueName(prefix);
  createStaff(staff);
  await logIn(page, staff);
  await expect(page).toHaveURL(/\/topics\/$/);
  await waitForHydration(page);
}

/** Creates a topic through the page's form (with or without JavaScript) and waits for its row. */
export async function createTopic(page: Page, name: string): Promise<void> {
  await page.getByLabel("New topic").fill(name);
  await page.getByRole("button", { name: "Create" }).click();
  await expect(topicRow(page, name)).toHaveAttribute("data-subscribers", "0");
}

/** Marks the current document; if the page reloads, the mark is gone. */
export async function markDocument(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as { __stillHere: boolean }).__stillHere = true;
  });
}

export async function expectNoReload(page: Page, message = "the page was not reloaded"): Promise<void> {
  const still = await page.evaluate(
    () => (window as unknown as { __stillHere?: boolean }).__stillHere === true,
  );
  expect(still, message).toBe(true);
}

/** The row shows `subscribers` and whether the viewer is subscribed. */
export async function expectRow(page: Page, name: string, subscribers: number, subscribed: boolean) {
  const row = topicRow(page, name);
  await expect(row).toHaveAttribute("data-subscribers", String(subscribers));
  await expect(row).toHaveAttribute("data-subscribed", String(subscribed));
}
