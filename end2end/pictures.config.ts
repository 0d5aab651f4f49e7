import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// The README's pictures (`./scripts/pictures.sh`): the test suite's server and browser, its
// own folder of specs.
export default defineConfig({ ...base, testDir: "./pictures" });
