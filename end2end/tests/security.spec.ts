import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { createStaff, logIn, topicRow, uniqueName, waitForHydration } from "./helpers";

// The pages run under a Content-Security-Policy that allows only the app's own scripts (the
// inline hydration script by its per-response nonce). The hydrated app must do everything it
// does without one violation: the browser reports each as a `securitypolicyviolation` event
// (and a console error, which the console check would catch too).

async function recordViolations(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __violations: string[] }).__violations = seen;
    document.addEventListener("securitypolicyviolation", (event) =>
      seen.push(`${event.violatedDirective} blocked ${event.blockedURI}`),
    );
  });
}

const violations = (page: Page) =>
  page.evaluate(() => (window as unknown as { __violations?: string[] }).__violations ?? []);

test("the hydrated app works under its Content-Security-Policy", async ({ page }) => {
  await recordViolations(page);
  const staff = uniqueName("csp");
  createStaff(staff);
  await logIn(page, staff);
  await expect(page).toHaveURL(/\/topics\/$/);
  const response = await page.reload();
  const policy = response?.headers()["content-security-policy"] ?? "";
  expect(policy).toMatch(/script-src 'self' 'nonce-[^']+'/);
  expect(policy).toContain("frame-ancestors 'none'");
  expect(policy).not.toContain("unsafe-inline");
  await waitForHydration(page);

  // Everything the page does with JavaScript: server functions, the live stream, a refetch.
  const topic = uniqueName("Csp ");
  await page.getByLabel("New topic").fill(topic);
  await page.getByRole("button", { name: "Create" }).click();
  await expect(topicRow(page, topic)).toHaveAttribute("data-subscribers", "0");
  await topicRow(page, topic).getByRole("button", { name: "Subscribe" }).click();
  await expect(topicRow(page, topic)).toHaveAttribute("data-subscribed", "true");
  await topicRow(page, topic).getByRole("button", { name: "Delete" }).click();
  await expect(topicRow(page, topic)).toHaveCount(0);
  expect(await violations(page)).toEqual([]);

  await page.getByRole("link", { name: "Activity" }).click();
  await waitForHydration(page);
  await expect(page.locator(`tr[data-topic-name="${topic}"]`).first()).toBeVisible();
  expect(await violations(page)).toEqual([]);
});

test.describe("an injected script", () => {
  // The refusal this test provokes is logged as a console error, by design.
  test.use({ allowedConsole: [/^Executing inline script violates the following Content Security Policy/] });

  test("a script the page did not send is refused", async ({ page }) => {
  await recordViolations(page);
  await page.goto("/login");
  await waitForHydration(page);
  // What an injected inline script would be: it must not run, and the browser says why.
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.__injected = true;";
    document.body.append(script);
  });
  await expect.poll(() => violations(page)).toEqual([expect.stringContaining("script-src")]);
  expect(await page.evaluate(() => (window as unknown as { __injected?: boolean }).__injected)).toBe(
    undefined,
  );
});
});
