import { test as base, expect, type ConsoleMessage, type Page } from "@playwright/test";

/**
 * Every page a test opens is watched: a console error or warning (Leptos reports hydration
 * mismatches as warnings), an uncaught exception or a wasm panic fails the test, listed with
 * the page it came from.
 */
let currentProblems: string[] = [];
let currentAllowed: RegExp[] = [];

/** Chromium logs every 4xx answer as a console error. */
const FAILED_LOAD = /^Failed to load resource: the server responded with a status of (\d{3})/;
/** What a page loads to run: none of these may ever fail. */
const ASSET = /\.(js|wasm|css|svg|ico|png|woff2?)$/;

/**
 * A 4xx answer to a page, a form POST or a server function is the product speaking (409 for a
 * taken name, the 404 page), and the page shows its message; Chromium logs it anyway. Only that
 * is let through: a 5xx, a failed asset and every other message still fail the test.
 */
function isAnsweredRequest(message: ConsoleMessage): boolean {
  const status = FAILED_LOAD.exec(message.text())?.[1];
  if (!status || !status.startsWith("4")) return false;
  const url = message.location().url;
  return url !== "" && !ASSET.test(new URL(url).pathname);
}

/**
 * Watches `page` for the current test; pages of the test's own context are watched already.
 * What a page logs counts against the test that was running when it was opened.
 */
export function watchConsole(page: Page): void {
  const problems = currentProblems;
  const allowed = currentAllowed;
  page.on("console", (message) => {
    if (message.type() !== "error" && message.type() !== "warning") return;
    if (isAnsweredRequest(message)) return;
    const text = message.text();
    if (allowed.some((pattern) => pattern.test(text))) return;
    problems.push(`${message.type()} on ${page.url()}: ${text} (${message.location().url})`);
  });
  page.on("pageerror", (error) => problems.push(`uncaught on ${page.url()}: ${error.message}`));
}

type ConsoleFixtures = {
  /** Messages a test expects (e.g. a stream losing its server during a restart). */
  allowedConsole: RegExp[];
  consoleIsClean: void;
};

export const test = base.extend<ConsoleFixtures>({
  allowedConsole: [[], { option: true }],
  consoleIsClean: [
    async ({ context, allowedConsole }, use) => {
      const problems: string[] = [];
      currentProblems = problems;
      currentAllowed = allowedConsole;
      context.pages().forEach(watchConsole);
      context.on("page", watchConsole);
      await use();
      expect(problems, "console errors, warnings and page errors").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };
