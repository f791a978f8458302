// The sandbox page in a real browser (Debian's chromium, driven by playwright-core): a
// newcomer opens /sandbox with the key the first start wrote, sends a message to a
// simulated phone, sees it arrive, answers from the phone, and Relais's keyword reply
// comes back live. Run by crates/relais/tests/browser.rs, which starts `relais serve`.

import { base, fitsAPhone, run, screenshot, signIn, step } from "./harness.mjs";

await run(async (page, problems) => {
  await page.goto(`${base}/sandbox`);
  await page.getByLabel("API key").waitFor();
  step("the sign-in form shows");

  await page.getByLabel("API key").fill("rls_not_a_key");
  await page.getByRole("button", { name: "Open" }).click();
  await page.getByText("This key was refused.").waitFor();
  // The browser logs the refused request itself: that one is expected.
  const refused = problems.findIndex((p) => p.includes("401 (Unauthorized)"));
  if (refused >= 0) problems.splice(refused, 1);
  step("a wrong key is refused with a message");

  await signIn(page);
  await page.getByText("No phone has received or sent anything yet").waitFor();
  await page.getByText("● live").waitFor();
  step("the right key opens the sandbox, live");

  const hostile = "<img src=x onerror=alert(1)> Votre code : 482913";
  await page.getByLabel("To").fill("+33612345678");
  await page.getByLabel("Text").fill(hostile);
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await page.getByText("Accepted: ").waitFor();
  const phone = page.locator('article.phone[data-number="+33612345678"]');
  const received = phone.locator(".bubble.received");
  await received.first().waitFor({ timeout: 15000 });
  const shown = (await received.first().innerText()).split("\n")[0];
  if (shown !== hostile) throw new Error(`the phone shows ${JSON.stringify(shown)}, not the text sent`);
  if (await phone.locator("img").count() !== 0) throw new Error("markup a sender typed became an element");
  step("the phone received the message, shown as text");

  await phone.getByRole("textbox").fill("STOP");
  await phone.getByRole("button", { name: "Reply" }).click();
  await phone.locator(".bubble.sent", { hasText: "STOP" }).waitFor();
  await received.nth(1).waitFor({ timeout: 15000 });
  step("the phone's STOP is stored, and Relais's confirmation arrives live");

  await page.getByLabel("Number").fill("+33698765432");
  await page.getByRole("button", { name: "Add" }).click();
  const second = page.locator('article.phone[data-number="+33698765432"]');
  await second.waitFor();
  await second.getByRole("textbox").fill("Bonjour, où est mon colis ?");
  await second.getByRole("textbox").press("Enter");
  await second.locator(".bubble.sent", { hasText: "où est mon colis" }).waitFor();
  step("a phone added on the page writes first");

  await screenshot(page, "sandbox.png", { fullPage: true });

  await page.getByLabel("Language").selectOption("fr");
  await page.getByRole("heading", { name: "Bac à sable Relais" }).waitFor();
  await page.getByRole("button", { name: "Répondre" }).first().waitFor();
  step("the page speaks French");

  await page.reload();
  await page.getByRole("heading", { name: "Bac à sable Relais" }).waitFor();
  await phone.locator(".bubble.sent", { hasText: "STOP" }).waitFor();
  step("a reload keeps the key, the language and the phones");

  await fitsAPhone(page, "sandbox-phone.png");
  step("it fits a phone-sized screen");
});
