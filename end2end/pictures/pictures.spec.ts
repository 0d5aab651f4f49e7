import { expect, test, type Browser, type Page } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { createStaff, logIn, PASSWORD, topicRow, uniqueName } from "../tests/helpers";

// The README's pictures, taken from the running app so they show what it is today:
// `./scripts/pictures.sh` writes them into docs/ (or PICTURES_DIR).
const out = path.resolve(__dirname, "..", process.env.PICTURES_DIR ?? "../docs");
const hydrated = async (page: Page) =>
  expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");

async function person(browser: Browser, staff: boolean, size = { width: 1100, height: 760 }) {
  const context = await browser.newContext({ viewport: size, colorScheme: "light" });
  const page = await context.newPage();
  const name = uniqueName(staff ? "editor" : "reader");
  if (staff) {
    createStaff(name);
    await logIn(page, name);
  } else {
    await page.goto("/signup");
    await hydrated(page);
    await page.getByLabel("Username").fill(name);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
  }
  await expect(page).toHaveURL(/\/topics\/$/);
  await hydrated(page);
  return page;
}

test("the README's pictures", async ({ browser }) => {
  test.setTimeout(120_000);
  fs.mkdirSync(out, { recursive: true });
  const editor = await person(browser, true);
  for (const name of ["Rust", "Go", "Kubernetes", "PostgreSQL"]) {
    if ((await topicRow(editor, name).count()) > 0) continue;
    await editor.getByLabel("New topic").fill(name);
    await editor.getByRole("button", { name: "Create" }).click();
    await expect(topicRow(editor, name)).toHaveCount(1);
  }
  await editor.screenshot({ path: path.join(out, "topics.png"), fullPage: true });

  const phone = await person(browser, false, { width: 390, height: 844 });
  for (const name of ["Rust", "Python"]) {
    await topicRow(phone, name).getByRole("button", { name: "Subscribe" }).click();
    await expect(topicRow(phone, name)).toHaveAttribute("data-subscribed", "true");
  }
  await phone.screenshot({ path: path.join(out, "topics-phone.png"), fullPage: true });

  await editor.goto("/topics/activity/");
  await hydrated(editor);
  await editor.screenshot({ path: path.join(out, "activity.png"), fullPage: true });

  // Two people side by side: B's page follows A's click without a reload.
  await editor.goto("/topics/");
  await hydrated(editor);
  const b = await person(browser, false, { width: 640, height: 620 });
  const a = await person(browser, false, { width: 640, height: 620 });
  const before = Number(await topicRow(b, "Go").getAttribute("data-subscribers"));
  await topicRow(a, "Go").getByRole("button", { name: "Subscribe" }).click();
  await expect(topicRow(b, "Go")).toHaveAttribute("data-subscribers", String(before + 1));
  const shots = [await a.screenshot(), await b.screenshot()].map((png) => png.toString("base64"));
  const sheet = await browser.newPage({ viewport: { width: 1300, height: 700 } });
  await sheet.setContent(`<body style="margin:0;display:flex;gap:20px;padding:20px;background:#c9d1de;font:14px system-ui">
    ${shots
      .map(
        (shot, i) => `<figure style="margin:0"><figcaption>${i ? "B, a moment later, no reload" : "A clicks Subscribe on Go"}</figcaption>
        <img style="border:1px solid #888" src="data:image/png;base64,${shot}"></figure>`,
      )
      .join("")}</body>`);
  await sheet.screenshot({ path: path.join(out, "live.png"), fullPage: true });
  for (const page of [editor, phone, a, b, sheet]) await page.context().close();
});
