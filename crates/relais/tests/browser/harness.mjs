// What every browser test does: start Debian's chromium through playwright-core, open a
// page that fails the test on any console error, page error or dialog, run the steps,
// and exit 0 only if all went well.
//
// Environment: RELAIS_BASE (http://127.0.0.1:PORT), RELAIS_KEY (an operator key),
// SCREENSHOT_DIR (where the pictures go).

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export const base = process.env.RELAIS_BASE;
export const key = process.env.RELAIS_KEY;
const shots = process.env.SCREENSHOT_DIR;
if (!base || !key || !shots) {
  console.error("RELAIS_BASE, RELAIS_KEY and SCREENSHOT_DIR are required");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

export const screenshot = (page, name, options = {}) => page.screenshot({ path: join(shots, name), ...options });

export const step = (what) => console.log(`- ${what}`);

// A call to the REST API with the operator key.
export async function api(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const value = await response.json().catch(() => null);
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(value)}`);
  return value;
}

// Signs in on a page's key form.
export async function signIn(page) {
  await page.getByLabel("API key").fill(key);
  await page.keyboard.press("Enter");
}

// Fails if the page is wider than a phone's screen; takes the phone-sized picture.
export async function fitsAPhone(page, name) {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`the page is ${overflow}px wider than a phone's screen`);
  await screenshot(page, name);
}

export async function run(test) {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  let failed = false;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("dialog", (d) => { problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
    await test(page, problems);
  } catch (e) {
    failed = true;
    console.error(`FAILED: ${e.message}`);
  } finally {
    await browser.close();
  }
  if (problems.length) {
    console.error(`the page logged problems:\n${problems.join("\n")}`);
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}
