import AxeBuilder from "@axe-core/playwright";
import type { Browser, Page } from "@playwright/test";
import { expect, test, watchConsole } from "./fixtures";
import {
  createStaff,
  createTopic,
  logIn,
  PASSWORD,
  signUp,
  topicRow,
  uniqueName,
  waitForHydration,
} from "./helpers";

/** Every page a person can reach, in the states it can be in. */
type Visit = { name: string; open: (page: Page) => Promise<void> };

const loggedOut: Visit[] = [
  { name: "log in", open: async (page) => void (await page.goto("/login")) },
  { name: "sign up", open: async (page) => void (await page.goto("/signup")) },
  { name: "not found", open: async (page) => void (await page.goto("/no/such/page")) },
  {
    name: "log in, wrong password",
    open: async (page) => {
      await page.goto("/login");
      await page.getByLabel("Username").fill("nobody-here");
      await page.getByLabel("Password").fill("not the password");
      await page.getByRole("button", { name: "Log in" }).click();
      await expect(page.locator("[data-form-error]")).toBeVisible();
    },
  },
  {
    name: "sign up, all digits",
    open: async (page) => {
      await page.goto("/signup");
      await page.getByLabel("Username").fill(uniqueName("digits"));
      await page.getByLabel("Password").fill("1234567890");
      await page.getByRole("button", { name: "Create account" }).click();
      await expect(page.locator("[data-form-error]")).toBeVisible();
    },
  },
];

const loggedIn: Visit[] = [
  { name: "topics", open: async (page) => void (await page.goto("/topics/")) },
  { name: "activity", open: async (page) => void (await page.goto("/topics/activity/")) },
  {
    name: "topics, a taken name",
    open: async (page) => {
      await page.goto("/topics/");
      await waitForHydration(page);
      await page.getByLabel("New topic").fill("python");
      await page.getByRole("button", { name: "Create" }).click();
      await expect(page.locator("form[data-form=create] [data-form-error]")).toBeVisible();
    },
  },
];

async function staffPage(page: Page): Promise<void> {
  const staff = uniqueName("uxstaff");
  createStaff(staff);
  await logIn(page, staff);
  await expect(page).toHaveURL(/\/topics\/$/);
}

/** Runs `check` on every page, logged out, as a member and as staff. */
async function everyPage(page: Page, check: (page: Page, name: string) => Promise<void>) {
  for (const visit of loggedOut) {
    await visit.open(page);
    await check(page, visit.name);
  }
  await signUp(page, uniqueName("ux"));
  for (const visit of loggedIn) {
    await visit.open(page);
    await check(page, `${visit.name} (member)`);
  }
  await page.getByRole("button", { name: "Log out" }).click();
  await staffPage(page);
  for (const visit of loggedIn) {
    await visit.open(page);
    await check(page, `${visit.name} (staff)`);
  }
}

test.describe("on a phone", () => {
  test.use({ viewport: { width: 360, height: 740 }, hasTouch: true, isMobile: true });

  test("no page is wider than the screen; controls are big enough to hit", async ({ page }) => {
    test.setTimeout(90_000);
    await everyPage(page, async (page, name) => {
      await waitForHydration(page);
      const widths = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        inner: window.innerWidth,
      }));
      expect(widths.scroll, `${name}: page wider than the screen`).toBeLessThanOrEqual(
        widths.inner,
      );
      for (const control of await page.locator("button:visible, input:visible, nav a:visible").all()) {
        const box = await control.boundingBox();
        const label = (await control.textContent()) || (await control.getAttribute("name"));
        expect(box?.height ?? 0, `${name}: "${label}" is too small to hit`).toBeGreaterThanOrEqual(
          44,
        );
      }
    });
  });

  test("a topic row keeps its name, count and button on one line", async ({ page }) => {
    await signUp(page, uniqueName("row"));
    await waitForHydration(page);
    const row = topicRow(page, "Python");
    const top = async (selector: string) => (await row.locator(selector).first().boundingBox())?.y;
    const name = await row.locator(".topic-name").boundingBox();
    const button = await row.getByRole("button", { name: "Subscribe" }).boundingBox();
    expect(name && button, "name and button are shown").toBeTruthy();
    // Same line: their vertical extents overlap.
    expect(button!.y).toBeLessThan(name!.y + name!.height);
    expect(name!.y).toBeLessThan(button!.y + button!.height);
    expect(await top(".topic-count")).toBeLessThan(button!.y + button!.height);
    // The header fits: "Log out" is inside the screen.
    const logout = await page.getByRole("button", { name: "Log out" }).boundingBox();
    expect(logout!.x + logout!.width).toBeLessThanOrEqual(360);
  });
});

test("accessibility: no serious or critical axe violation on any page", async ({ page }) => {
  test.setTimeout(90_000);
  await everyPage(page, async (page, name) => {
    await waitForHydration(page);
    const results = await new AxeBuilder({ page }).analyze();
    const serious = results.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
    expect(serious, name).toEqual([]);
  });
});

test("accessibility in the dark scheme", async ({ page }) => {
  await page.emulateMedia({ colorScheme: "dark" });
  await signUp(page, uniqueName("dark"));
  await waitForHydration(page);
  const backgroundOf = () =>
    page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const background = await backgroundOf();
  await page.emulateMedia({ colorScheme: "light" });
  const light = await backgroundOf();
  expect(background, "the dark scheme has its own colours").not.toBe(light);
  await page.emulateMedia({ colorScheme: "dark" });
  const results = await new AxeBuilder({ page }).withTags(["wcag2aa"]).analyze();
  expect(
    results.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id),
  ).toEqual([]);
});

test("every action is reachable by keyboard, with a visible focus", async ({ page }) => {
  await signUp(page, uniqueName("keys"));
  await waitForHydration(page);
  const subscribe = topicRow(page, "Django").getByRole("button", { name: "Subscribe" });
  let reached = false;
  for (let presses = 0; presses < 40 && !reached; presses++) {
    await page.keyboard.press("Tab");
    reached = await subscribe.evaluate((button) => button === document.activeElement);
  }
  expect(reached, "Tab reaches Django's Subscribe button").toBe(true);
  const outline = await subscribe.evaluate((button) => getComputedStyle(button).outlineStyle);
  expect(outline, "the focused button shows it").not.toBe("none");
  await page.keyboard.press("Enter");
  await expect(topicRow(page, "Django")).toHaveAttribute("data-subscribed", "true");
});

test("form errors are tied to their inputs", async ({ page }) => {
  await page.goto("/login");
  await page.getByLabel("Username").fill("nobody-here");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  const error = page.locator("[data-form-error]");
  await expect(error).toBeVisible();
  const id = await error.getAttribute("id");
  expect(id).toBeTruthy();
  for (const label of ["Username", "Password"]) {
    await expect(page.getByLabel(label)).toHaveAttribute("aria-invalid", "true");
    await expect(page.getByLabel(label)).toHaveAttribute("aria-describedby", new RegExp(id!));
  }

  await signUp(page, uniqueName("tied"));
  await waitForHydration(page);
  const input = page.getByLabel("New topic");
  await expect(input).not.toHaveAttribute("aria-invalid", "true");
  await input.fill("Python");
  await page.getByRole("button", { name: "Create" }).click();
  const createError = page.locator("form[data-form=create] [data-form-error]");
  await expect(createError).toContainText("exists already");
  await expect(input).toHaveAttribute("aria-invalid", "true");
  await expect(input).toHaveAttribute("aria-describedby", (await createError.getAttribute("id"))!);
});

async function member(browser: Browser): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  watchConsole(page);
  await signUp(page, uniqueName("other"));
  await waitForHydration(page);
  return page;
}

test("counts moved by others are announced politely, focus stays put", async ({ page, browser }) => {
  await signUp(page, uniqueName("listener"));
  await waitForHydration(page);
  const input = page.getByLabel("New topic");
  await input.focus();
  const before = Number(await topicRow(page, "DevOps").getAttribute("data-subscribers"));

  const other = await member(browser);
  await topicRow(other, "DevOps").getByRole("button", { name: "Subscribe" }).click();
  await expect(topicRow(other, "DevOps")).toHaveAttribute("data-subscribed", "true");

  const status = page.locator("[data-announcement]");
  await expect(status).toHaveAttribute("aria-live", "polite");
  await expect(status).toHaveText(`DevOps: ${before + 1} subscriber${before + 1 === 1 ? "" : "s"}.`);
  await expect(input).toBeFocused();
  await topicRow(other, "DevOps").getByRole("button", { name: "Unsubscribe" }).click();
  await other.context().close();
});

test("a button shows its action is on its way and sends it once", async ({ page }) => {
  await signUp(page, uniqueName("once"));
  await waitForHydration(page);
  let calls = 0;
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/api/subscribe*", async (route) => {
    calls += 1;
    await held;
    await route.continue();
  });
  const row = topicRow(page, "Python");
  const button = row.getByRole("button", { name: "Subscribe" });
  await button.click();
  await expect(button).toBeDisabled();
  await expect(row).toHaveAttribute("aria-busy", "true");
  await button.click({ force: true });
  await button.dispatchEvent("submit");
  release();
  await expect(row).toHaveAttribute("data-subscribed", "true");
  await expect(row).toHaveAttribute("data-subscribers", /\d+/);
  expect(calls, "one request for two clicks").toBe(1);
  await expect(row.getByRole("button", { name: "Unsubscribe" })).toBeEnabled();
});

test("activity times are shown in the reader's time zone", async ({ browser }) => {
  const context = await browser.newContext({ timezoneId: "Asia/Kathmandu", locale: "en-GB" });
  const page = await context.newPage();
  watchConsole(page);
  const staff = uniqueName("tz");
  createStaff(staff);
  await logIn(page, staff);
  await expect(page).toHaveURL(/\/topics\/$/);
  await waitForHydration(page);
  const topic = uniqueName("When ");
  await createTopic(page, topic);
  await expect(topicRow(page, topic)).toHaveCount(1);

  await page.goto("/topics/activity/");
  await waitForHydration(page);
  const time = page.locator(`tr[data-topic-name="${topic}"] time`);
  const datetime = await time.getAttribute("datetime");
  expect(datetime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const expected = await page.evaluate(
    (iso) =>
      new Intl.DateTimeFormat([], { dateStyle: "medium", timeStyle: "short" }).format(
        new Date(iso),
      ),
    datetime!,
  );
  await expect(time).toHaveText(expected);
  // Kathmandu is UTC+05:45: the minutes shown differ from the UTC ones.
  expect(expected).not.toContain(datetime!.slice(11, 16));
  await context.close();
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("activity times are in UTC, and say so", async ({ page }) => {
    const staff = uniqueName("utc");
    createStaff(staff);
    await page.goto("/login");
    await page.getByLabel("Username").fill(staff);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    const topic = uniqueName("Utc ");
    await createTopic(page, topic);
    await page.goto("/topics/activity/");
    const time = page.locator(`tr[data-topic-name="${topic}"] time`);
    const datetime = (await time.getAttribute("datetime"))!;
    await expect(time).toHaveText(`${datetime.slice(0, 10)} ${datetime.slice(11, 19)} UTC`);
  });
});

test("a plain form is sent once: a second submit while the first is on its way is dropped", async ({
  page,
}) => {
  await page.goto("/signup");
  await waitForHydration(page);
  await page.getByLabel("Username").fill(uniqueName("double"));
  await page.getByLabel("Password").fill(PASSWORD);
  // Runs after the page's own handler (a listener on window, where the event ends up): notes
  // whether the page let the submit go, then stops it, so the page stays to be clicked again.
  await page.evaluate(() => {
    const seen: boolean[] = [];
    (window as unknown as { __letThrough: boolean[] }).__letThrough = seen;
    window.addEventListener("submit", (event) => {
      seen.push(!event.defaultPrevented);
      event.preventDefault();
    });
  });
  const letThrough = () =>
    page.evaluate(() => (window as unknown as { __letThrough: boolean[] }).__letThrough);
  const button = page.getByRole("button", { name: "Create account" });
  await button.click();
  await expect(button).toBeDisabled();
  await expect(button).toHaveAttribute("aria-busy", "true");
  // A second click (the button is disabled, so as a script would send it).
  await page
    .locator("form[data-form=signup]")
    .evaluate((form: HTMLFormElement) => form.requestSubmit());
  expect(await letThrough()).toEqual([true, false]);
});
