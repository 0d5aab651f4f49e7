import type { Page, Response, Route } from "@playwright/test";
import { expect, test } from "./fixtures";
import {
  createTopic,
  expectNoReload,
  expectRow,
  markDocument,
  PASSWORD,
  signUp,
  staffOnTopics,
  topicRow,
  uniqueName,
  waitForHydration,
} from "./helpers";

// With JavaScript on, a form sent before the page has hydrated (a slow connection, a quick
// hand) is a plain POST, answered with the page again and the message beside the form, at the
// POST's own address. That page must hydrate like any other and stay fully interactive.

/**
 * Opens `url` with its wasm held back, so the page stays server-rendered, and runs `submit`
 * (which sends one of its forms: a plain POST). Returns the answer to that POST, whose page is
 * let hydrate.
 */
async function plainPost(
  page: Page,
  url: string,
  action: string,
  submit: () => Promise<void>,
): Promise<Response> {
  let hold = true;
  const held: Route[] = [];
  await page.route("**/*.wasm", async (route) => {
    if (hold) held.push(route);
    else await route.continue();
  });
  await page.goto(url);
  await expect(page.locator("body")).not.toHaveAttribute("data-hydrated", "true");
  const answer = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === action,
  );
  await submit();
  const response = await answer;
  hold = false;
  // The first document's request, abandoned by the navigation, and the answer page's own.
  for (const route of held) await route.continue().catch(() => undefined);
  await waitForHydration(page);
  await page.unroute("**/*.wasm");
  return response;
}

/** The hydrated page answers clicks in place: subscribe and unsubscribe without a reload. */
async function expectInteractive(page: Page, topic: string) {
  await markDocument(page);
  const before = Number(await topicRow(page, topic).getAttribute("data-subscribers"));
  await topicRow(page, topic).getByRole("button", { name: "Subscribe" }).click();
  await expectRow(page, topic, before + 1, true);
  await topicRow(page, topic).getByRole("button", { name: "Unsubscribe" }).click();
  await expectRow(page, topic, before, false);
  await expectNoReload(page);
}

test("create: a taken name", async ({ page }) => {
  await signUp(page, uniqueName("ce"));
  const response = await plainPost(page, "/topics/", "/topics/create/", async () => {
    await page.getByLabel("New topic").fill("python");
    await page.getByRole("button", { name: "Create" }).click();
  });
  expect(response.status()).toBe(409);
  // The address bar shows the page, so that a reload does not post the form again.
  await expect(page).toHaveURL(/\/topics\/$/);
  await expect(page.locator("form[data-form=create] [data-form-error]")).toContainText(
    "exists already",
  );
  await expect(page.getByLabel("New topic")).toHaveValue("python");
  await expectInteractive(page, "Python");
});

test("rename, subscribe and delete: a taken name, a topic gone meanwhile", async ({ page }) => {
  await staffOnTopics(page, "fe");
  const topic = uniqueName("Form ");
  await createTopic(page, topic);
  const id = await topicRow(page, topic).getAttribute("data-topic-id");

  let response = await plainPost(page, "/topics/", `/topics/rename/${id}/`, async () => {
    await topicRow(page, topic).getByRole("textbox").fill("Django");
    await topicRow(page, topic).getByRole("button", { name: "Rename" }).click();
  });
  expect(response.status()).toBe(409);
  await expect(page).toHaveURL(/\/topics\/$/);
  await expect(topicRow(page, topic).locator("[data-form-error]")).toContainText(
    "exists already",
  );
  await expectInteractive(page, topic);

  // The page still shows the topic when someone else deletes it.
  const deleteElsewhere = async () => {
    const gone = await page.request.post(`/topics/delete/${id}/`, { maxRedirects: 0 });
    expect(gone.status()).toBe(303);
  };
  response = await plainPost(page, "/topics/", `/topics/subscribe/${id}/`, async () => {
    await deleteElsewhere();
    await topicRow(page, topic).getByRole("button", { name: "Subscribe" }).click();
  });
  expect(response.status()).toBe(404);
  await expect(page).toHaveURL(/\/topics\/$/);
  await expect(page.locator("[data-form-error]").first()).toContainText("does not exist");
  await expectInteractive(page, "Django");

  const doomed = uniqueName("Doomed ");
  await createTopic(page, doomed);
  const doomedId = await topicRow(page, doomed).getAttribute("data-topic-id");
  response = await plainPost(page, "/topics/", `/topics/delete/${doomedId}/`, async () => {
    const gone = await page.request.post(`/topics/delete/${doomedId}/`, { maxRedirects: 0 });
    expect(gone.status()).toBe(303);
    await topicRow(page, doomed).getByRole("button", { name: "Delete" }).click();
  });
  expect(response.status()).toBe(404);
  await expect(page).toHaveURL(/\/topics\/$/);
  await expect(topicRow(page, doomed)).toHaveCount(0);
  await expectInteractive(page, "Python");
});

test("sign up and log in: a taken username, a wrong password", async ({ page }) => {
  const name = uniqueName("ae");
  await signUp(page, name);
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login/);

  let response = await plainPost(page, "/signup", "/signup", async () => {
    await page.getByLabel("Username").fill(name);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
  });
  expect(response.status()).toBe(409);
  await expect(page).toHaveURL(/\/signup$/);
  await expect(page.locator("[data-form-error]")).toContainText("is taken");

  response = await plainPost(page, "/login", "/login", async () => {
    await page.getByLabel("Username").fill(name);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Log in" }).click();
  });
  expect(response.status()).toBeGreaterThanOrEqual(400);
  expect(response.status()).toBeLessThan(500);
  await expect(page.locator("[data-form-error]")).toContainText("Wrong username or password");
  // The hydrated form logs in without a reload of its own.
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/topics\/$/);
  await waitForHydration(page);
  await expectInteractive(page, "DevOps");
});
