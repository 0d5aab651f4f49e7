import { expect, test, watchConsole } from "./fixtures";
import {
  createStaff,
  createTopic,
  expectNoReload,
  expectRow,
  logIn,
  markDocument,
  signUp,
  staffOnTopics,
  topicNames,
  topicRow,
  uniqueName,
  waitForHydration,
} from "./helpers";

test.describe("with JavaScript, the page never reloads", () => {
  test("subscribe, unsubscribe, create, unsubscribe from all, activity", async ({ page }) => {
    await signUp(page, uniqueName("js"));
    await waitForHydration(page);
    await markDocument(page);

    await topicRow(page, "Python").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(page, "Python", 1, true);
    await topicRow(page, "Python").getByRole("button", { name: "Unsubscribe" }).click();
    await expectRow(page, "Python", 0, false);

    const topic = uniqueName("Topic ");
    await page.getByLabel("New topic").fill(`  ${topic}  `);
    await page.getByRole("button", { name: "Create" }).click();
    await expectRow(page, topic, 0, false);
    await expect(page.getByLabel("New topic")).toHaveValue("");

    await page.getByLabel("New topic").fill(topic.toUpperCase());
    await page.getByRole("button", { name: "Create" }).click();
    await expect(page.locator("form[data-form=create] [data-form-error]")).toContainText(
      "exists already",
    );

    await topicRow(page, "Django").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(page, "Django", 1, true);
    await topicRow(page, topic).getByRole("button", { name: "Subscribe" }).click();
    await expectRow(page, topic, 1, true);
    await page.getByRole("button", { name: "Unsubscribe from all" }).click();
    await expectRow(page, "Django", 0, false);
    await expectRow(page, topic, 0, false);
    await expectNoReload(page);

    await page.getByRole("link", { name: "Activity" }).click();
    await expect(page.locator(`tr[data-topic-name="${topic}"]`)).toHaveAttribute(
      "data-action",
      "created",
    );
  });

  test("the filter loads the filtered page, which hydrates and keeps working", async ({ page }) => {
    await signUp(page, uniqueName("filter"));
    await waitForHydration(page);
    await page.getByLabel("Filter topics by name").fill("DJAN");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect(page).toHaveURL(/\/topics\/\?q=DJAN$/);
    await expect.poll(() => topicNames(page)).toEqual(["Django"]);
    await expect(page.getByLabel("Filter topics by name")).toHaveValue("DJAN");
    // A new document (a plain GET form): it hydrates, and its actions stay in-page.
    await waitForHydration(page);
    await markDocument(page);
    // Other tests of the run may follow Django too.
    const before = Number(await topicRow(page, "Django").getAttribute("data-subscribers"));
    await topicRow(page, "Django").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(page, "Django", before + 1, true);
    await expectNoReload(page);
  });

  test("staff rename and delete", async ({ page }) => {
    const staff = uniqueName("staff");
    createStaff(staff);
    await logIn(page, staff);
    await expect(page).toHaveURL(/\/topics\/$/);
    await waitForHydration(page);

    const topic = uniqueName("Old ");
    await createTopic(page, topic);
    await expectRow(page, topic, 0, false);
    await markDocument(page);

    const renamed = uniqueName("New ");
    const row = topicRow(page, topic);
    await row.getByRole("textbox").fill(renamed);
    await row.getByRole("button", { name: "Rename" }).click();
    await expectRow(page, renamed, 0, false);
    await expect(topicRow(page, topic)).toHaveCount(0);

    const clash = topicRow(page, renamed);
    await clash.getByRole("textbox").fill("python");
    await clash.getByRole("button", { name: "Rename" }).click();
    await expect(topicRow(page, renamed).locator("[data-form-error]")).toContainText(
      "exists already",
    );

    await topicRow(page, renamed).getByRole("button", { name: "Delete" }).click();
    await expect(topicRow(page, renamed)).toHaveCount(0);
    await expectNoReload(page);

    await page.goto("/topics/activity/");
    const rows = page.locator(`tr[data-topic-name="${renamed}"]`);
    await expect(rows).toHaveCount(1);
    await expect(rows).toHaveAttribute("data-action", "deleted");
  });

  test("two row actions in flight: each result lands in its own row", async ({ page }) => {
    await staffOnTopics(page, "rows");
    const clashing = uniqueName("Clash ");
    await createTopic(page, clashing);
    const other = uniqueName("Other ");
    await createTopic(page, other);

    // The rename (which fails: the name is taken) is answered only after the subscribe of
    // another row, dispatched later, has been answered: the failure arrives last.
    const subscribed = page.waitForResponse((r) => r.url().endsWith("/api/subscribe"));
    await page.route("**/api/rename_topic", async (route) => {
      await subscribed;
      await route.continue();
    });
    await topicRow(page, clashing).getByRole("textbox").fill("python");
    await topicRow(page, clashing).getByRole("button", { name: "Rename" }).click();
    await topicRow(page, other).getByRole("button", { name: "Subscribe" }).click();

    await expect(topicRow(page, clashing).locator("[data-form-error]")).toContainText(
      "exists already",
    );
    await expectRow(page, other, 1, true);
    await expect(topicRow(page, other).locator("[data-form-error]")).toHaveCount(0);
    await expectRow(page, clashing, 0, false);
  });

  test("a page loaded again after others subscribed hydrates and keeps working", async ({
    page,
    browser,
  }) => {
    // The first load of each viewer is rendered; after another user's subscription moved the
    // version, the next load of the same URL is assembled around it (server/src/page_templates.rs).
    await signUp(page, uniqueName("again"));
    await waitForHydration(page);
    const staffContext = await browser.newContext();
    const staffPage = await staffContext.newPage();
    watchConsole(staffPage);
    await staffOnTopics(staffPage, "againstaff");
    const count = Number(await topicRow(page, "Django").getAttribute("data-subscribers"));

    const otherContext = await browser.newContext();
    const other = await otherContext.newPage();
    watchConsole(other);
    await signUp(other, uniqueName("other"));
    await waitForHydration(other);
    await topicRow(other, "Django").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(other, "Django", count + 1, true);

    for (const viewer of [page, staffPage]) {
      await viewer.reload();
      await waitForHydration(viewer);
      await expectRow(viewer, "Django", count + 1, false);
    }
    await markDocument(page);
    await topicRow(page, "Django").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(page, "Django", count + 2, true);
    await expectNoReload(page);
    await topicRow(staffPage, "Django").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(staffPage, "Django", count + 3, true);
    await staffContext.close();
    await otherContext.close();
  });

  test("members see no rename or delete", async ({ page }) => {
    await signUp(page, uniqueName("member"));
    await expect(topicRow(page, "Python").getByRole("button", { name: "Delete" })).toHaveCount(0);
    await expect(topicRow(page, "Python").getByRole("button", { name: "Rename" })).toHaveCount(0);
  });
});

test.describe("without JavaScript, the plain forms do the same", () => {
  test.use({ javaScriptEnabled: false });

  test("subscribe, unsubscribe, create with errors, unsubscribe from all", async ({ page }) => {
    await signUp(page, uniqueName("nojs"), false);

    await topicRow(page, "Python").getByRole("button", { name: "Subscribe" }).click();
    await expect(page).toHaveURL(/\/topics\/$/);
    await expectRow(page, "Python", 1, true);
    await topicRow(page, "Python").getByRole("button", { name: "Unsubscribe" }).click();
    await expectRow(page, "Python", 0, false);

    const topic = uniqueName("Plain ");
    await createTopic(page, topic);
    await expectRow(page, topic, 0, false);

    await page.getByLabel("New topic").fill(topic.toLowerCase());
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/topics/create/")),
      page.getByRole("button", { name: "Create" }).click(),
    ]);
    expect(response.status()).toBe(409);
    await expect(page.locator("form[data-form=create] [data-form-error]")).toContainText(
      "exists already",
    );
    await expect(page.getByLabel("New topic")).toHaveValue(topic.toLowerCase());

    await topicRow(page, "DevOps").getByRole("button", { name: "Subscribe" }).click();
    await expectRow(page, "DevOps", 1, true);
    await page.getByRole("button", { name: "Unsubscribe from all" }).click();
    await expectRow(page, "DevOps", 0, false);

    await page.getByRole("link", { name: "Activity" }).click();
    await expect(page.locator(`tr[data-topic-name="${topic}"]`)).toHaveAttribute(
      "data-action",
      "created",
    );
  });

  test("staff rename and delete", async ({ page }) => {
    const staff = uniqueName("plainstaff");
    createStaff(staff);
    await page.goto("/login");
    await page.getByLabel("Username").fill(staff);
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByRole("button", { name: "Log in" }).click();
    await expect(page).toHaveURL(/\/topics\/$/);

    const topic = uniqueName("Plain old ");
    await createTopic(page, topic);

    const renamed = uniqueName("Plain new ");
    await topicRow(page, topic).getByRole("textbox").fill(renamed);
    await topicRow(page, topic).getByRole("button", { name: "Rename" }).click();
    await expectRow(page, renamed, 0, false);

    await topicRow(page, renamed).getByRole("textbox").fill("   ");
    await topicRow(page, renamed).getByRole("button", { name: "Rename" }).click();
    await expect(topicRow(page, renamed).locator("[data-form-error]")).toContainText(
      "Please give the topic a name.",
    );

    await topicRow(page, renamed).getByRole("button", { name: "Delete" }).click();
    await expect(topicRow(page, renamed)).toHaveCount(0);
  });
});
