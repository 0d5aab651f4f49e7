import { expect, test } from "./fixtures";
import { logIn, PASSWORD, signUp, topicNames, uniqueName, waitForHydration } from "./helpers";

test("sign up, see the seeded topics, log out and log in again", async ({ page }) => {
  const name = uniqueName("ann");
  await signUp(page, name);
  await waitForHydration(page);
  await expect(page.locator(".whoami")).toContainText(name);
  expect(await topicNames(page)).toEqual(["DevOps", "Django", "Python"]);
  for (const topic of await page.locator("[data-topic-id]").all()) {
    await expect(topic).toHaveAttribute("data-subscribers", "0");
    await expect(topic).toHaveAttribute("data-subscribed", "false");
  }

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login\?next=\/topics\/$/);
  await page.goto("/topics/");
  await expect(page).toHaveURL(/\/login/);

  await logIn(page, name, "wrong password!");
  await expect(page.locator("[data-form-error]")).toContainText("Wrong username or password");
  await expect(page.getByLabel("Username")).toHaveValue(name);

  await logIn(page, name, PASSWORD);
  await expect(page).toHaveURL(/\/topics\/$/);
  expect(await topicNames(page)).toEqual(["DevOps", "Django", "Python"]);
});

test("a taken username is explained on the signup form", async ({ page }) => {
  const name = uniqueName("bo");
  await signUp(page, name);
  await page.getByRole("button", { name: "Log out" }).click();

  await page.goto("/signup");
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.locator("[data-form-error]")).toContainText("is taken");
});

test("unknown pages show the 404 page", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});
