// The dashboard in a real browser: after a batch of a campaign, the figures, the funnel
// drawn by the server and the campaign's progress show what was sent and delivered, and
// follow as statuses come in; a campaign started over the API shows its report and its
// funnel. Run by crates/relais/tests/browser.rs.

import { api, base, fitsAPhone, run, screenshot, signIn, step } from "./harness.mjs";

const BATCH = 25;

await run(async (page) => {
  await page.goto(`${base}/dashboard`);
  await signIn(page);
  await page.getByRole("heading", { name: "Relais dashboard" }).waitFor();
  await page.getByText("No campaign sent in this period").waitFor();
  await page.locator('[data-figure="accepted"] .value', { hasText: /^0$/ }).waitFor();
  step("an empty tenant's dashboard opens");

  const messages = Array.from({ length: BATCH }, (_, i) => ({
    to: `+336123456${String(i).padStart(2, "0")}`, channel: "sim", purpose: "transactional",
    campaign: "soldes-hiver", content: { text: "-20 % ce week-end" },
  }));
  await api("POST", "/v1/messages/batch", { messages });
  step(`a batch of ${BATCH} messages was accepted`);

  // The simulated phones report `delivered` a second after each send: refresh until the
  // page shows every message delivered.
  const delivered = page.locator('[data-figure="delivered"] .value', { hasText: "100 %" });
  for (let i = 0; i < 40 && !(await delivered.isVisible()); i++) {
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForTimeout(500);
  }
  await delivered.waitFor({ timeout: 1000 });
  await page.locator('[data-figure="accepted"] .value', { hasText: new RegExp(`^${BATCH}$`) }).waitFor();
  const row = page.locator("#sends tbody tr", { hasText: "soldes-hiver" });
  await row.getByText("100 %").waitFor();
  step("the figures and the campaign's progress show the batch sent and delivered");

  const funnel = page.locator("#funnel");
  await page.waitForFunction(() => document.getElementById("funnel").naturalWidth > 0);
  const chart = await (await fetch(`${base}/v1/analytics/funnel.svg`, {
    headers: { Authorization: `Bearer ${process.env.RELAIS_KEY}` },
  })).text();
  if (!chart.includes(`data-stage="delivered" data-count="${BATCH}"`)) {
    throw new Error(`the funnel does not show ${BATCH} delivered: ${chart.slice(0, 300)}`);
  }
  if (!(await funnel.getAttribute("src")).startsWith("blob:")) throw new Error("the funnel is not shown");
  step("the funnel drawn by the server shows them delivered");
  await screenshot(page, "dashboard.png", { fullPage: true });

  // A campaign to the same contacts: the page shows its report and its funnel.
  const campaign = await api("POST", "/v1/campaigns", {
    name: "relance-hiver", filter: "identity.sms exists", channel: "sim", purpose: "transactional",
    content: { text: "Encore -10 % ce soir" },
  });
  await api("POST", `/v1/campaigns/${campaign.id}/start`);
  const deliveredCell = page.locator("#campaign-table tbody tr td:nth-child(4)", {
    hasText: new RegExp(`^${BATCH}$`),
  });
  for (let i = 0; i < 40 && !(await deliveredCell.isVisible()); i++) {
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForTimeout(500);
  }
  await deliveredCell.waitFor({ timeout: 1000 });
  await page.locator("#campaign-summary", { hasText: `completed · ${BATCH} of ${BATCH} recipients sent` }).waitFor();
  await page.waitForFunction(() => document.getElementById("campaign-funnel").naturalWidth > 0);
  const campaignChart = await (await fetch(`${base}/v1/campaigns/${campaign.id}/funnel.svg`, {
    headers: { Authorization: `Bearer ${process.env.RELAIS_KEY}` },
  })).text();
  if (!campaignChart.includes(`data-stage="delivered" data-count="${BATCH}"`)) {
    throw new Error(`the campaign funnel does not show ${BATCH} delivered: ${campaignChart.slice(0, 300)}`);
  }
  step("the campaign's report and funnel show its messages delivered");
  await page.locator("#campaigns").screenshot({ path: `${process.env.SCREENSHOT_DIR}/dashboard-campaign.png` });

  await page.getByLabel("Period").selectOption("7d");
  await page.getByLabel("Language").selectOption("fr");
  await page.getByRole("heading", { name: "Tableau de bord Relais" }).waitFor();
  await page.getByText("Entonnoir de remise").first().waitFor();
  step("the page speaks French and shows 7 days");

  await fitsAPhone(page, "dashboard-phone.png");
  step("it fits a phone-sized screen");
});
