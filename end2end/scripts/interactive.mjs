// How long a first visit takes to become interactive: from the start of navigation to the
// moment the wasm app has hydrated the page (`data-hydrated` on <body>), in a fresh browser
// profile each time (nothing cached), in Debian's chromium.
//
//   node end2end/scripts/interactive.mjs [URL] [RUNS]
//
// Prints each run and the median; measures, never gates anything.
import { chromium } from "@playwright/test";

const url = process.argv[2] ?? "http://127.0.0.1:3000/login";
const runs = Number(process.argv[3] ?? 10);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});
const times = [];
for (let run = 1; run <= runs; run++) {
  const context = await browser.newContext();
  // Notes the moment the mark appears, in the page's own clock (0 = navigation start).
  await context.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.body?.dataset.hydrated === "true" && !window.__interactiveAt) {
        window.__interactiveAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-hydrated"] });
  });
  const page = await context.newPage();
  await page.goto(url, { waitUntil: "commit" });
  await page.waitForFunction(() => window.__interactiveAt, null, { timeout: 60_000 });
  const ms = await page.evaluate(() => window.__interactiveAt);
  times.push(ms);
  console.log(`run ${run}: interactive after ${ms.toFixed(0)} ms`);
  await context.close();
}
await browser.close();
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`${url}: median ${median.toFixed(0)} ms, slowest ${times.at(-1).toFixed(0)} ms over ${runs} fresh visits`);
