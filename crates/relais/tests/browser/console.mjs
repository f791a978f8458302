// The agent console in a real browser: an agent logs in, a customer writes from a
// sandbox phone, the conversation appears live in the agent's list with its unread count,
// the agent reads the thread (shown as text) with the customer's profile, leaves a private
// note, asks the tenant's language model (a fake OpenAI-compatible server run here) for a
// suggested reply and a summary of the thread, answers in their own words, with a canned
// reply and with a template picked from the tenant's templates (all reach the phone), and
// resolves. Run by crates/relais/tests/browser.rs.

import { createServer } from "node:http";
import { api, base, fitsAPhone, run, screenshot, step } from "./harness.mjs";

const PHONE = "+33612345678";

async function phoneReceived(text) {
  for (let i = 0; i < 60; i++) {
    const phone = await api("GET", `/v1/sim/phones/${encodeURIComponent(PHONE)}/messages`);
    if (phone.messages.some((m) => m.direction === "received" && m.text === text)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the phone never received ${JSON.stringify(text)}`);
}

// A chat-completions endpoint that drafts from the knowledge base entry it is given and
// summarises; every request it gets is kept.
const modelRequests = [];
const SUGGESTION = "Nous vous renvoyons un colis aujourd'hui même. [colis-casse]";
const SUMMARY = "Demande : colis arrivé cassé.\nEn attente : le renvoi.";
const model = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => { body += chunk; });
  request.on("end", () => {
    const asked = JSON.parse(body);
    modelRequests.push(asked);
    const summarising = asked.messages.some((m) => m.role === "system" && m.content.includes("Summarise"));
    response.writeHead(200, { "Content-Type": "application/json" });
    response.end(JSON.stringify({
      id: "fake", object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: summarising ? SUMMARY : SUGGESTION }, finish_reason: "stop" }],
    }));
  });
});
await new Promise((resolve) => model.listen(0, "127.0.0.1", resolve));
const modelUrl = `http://127.0.0.1:${model.address().port}/v1`;

await run(async (page) => {
  await api("PUT", "/v1/nlu/knowledge-base", [{
    id: "colis-casse", question: "Ma commande est arrivée cassée", answer: "Un nouveau colis part le jour même.", tags: ["cassé", "abîmé"],
  }]);
  await api("PUT", "/v1/nlu/llm", { base_url: modelUrl, model: "fake" });
  await api("POST", "/v1/templates", {
    name: "colis_remplace",
    variants: [
      { language: "fr", content: { text: "Votre colis de remplacement est parti." } },
      { language: "en", content: { text: "Your replacement parcel has shipped." } },
    ],
  });
  await api("PUT", "/v1/teams/support", { assignment: "round_robin", first_response_minutes: 10, default: true });
  await api("POST", "/v1/agents", {
    email: "ana@example.com", name: "Ana", password: "correct horse battery", teams: ["support"], capacity: 3,
  });
  await api("PUT", "/v1/canned-replies/replacement", { text: "Désolée ! Ici {{ agent.name }} : un nouveau colis part aujourd’hui." });

  await page.goto(`${base}/console`);
  await page.getByLabel("E-mail").fill("ana@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("No conversation here.").waitFor();
  await page.getByText("● live").waitFor();
  step("Ana logs in; her list is empty and live");

  const hostile = "<b>Bonjour</b>, ma commande est arrivée cassée !";
  await api("POST", `/v1/sim/phones/${encodeURIComponent(PHONE)}/reply`, { text: hostile });
  const item = page.locator("#conversations li", { hasText: PHONE });
  await item.waitFor({ timeout: 15000 });
  await item.locator(".badge.unread", { hasText: "1" }).waitFor({ timeout: 15000 });
  step("the customer's conversation appears live, with one unread message");

  await item.getByRole("button").click();
  const thread = page.locator("#thread");
  const bubble = thread.locator(".bubble.received").first();
  await bubble.waitFor();
  if (!(await bubble.innerText()).startsWith(hostile)) throw new Error(`the thread shows ${await bubble.innerText()}`);
  if (await thread.locator("b").count() !== 0) throw new Error("markup the customer typed became an element");
  await page.locator("#about", { hasText: "assigned to you" }).waitFor();
  await page.locator("#profile", { hasText: PHONE }).waitFor();
  if (await item.locator(".badge.unread").count() !== 0) throw new Error("the unread count stayed after reading");
  step("the thread shows the message as text, assigned to Ana, with the profile");

  await page.getByLabel("Add a note").fill("Deuxième colis cassé ce mois-ci");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#notes", { hasText: "Deuxième colis cassé" }).waitFor();
  step("a private note is kept");

  await page.getByRole("button", { name: "Suggest a reply" }).click();
  await page.locator("#assist-result", { hasText: "colis-casse" }).waitFor();
  const drafted = await page.getByLabel("Reply", { exact: true }).inputValue();
  if (drafted !== SUGGESTION) throw new Error(`the reply box holds ${JSON.stringify(drafted)}`);
  const asked = JSON.stringify(modelRequests.at(-1));
  if (!asked.includes("ma commande est arrivée cassée") || !asked.includes("Un nouveau colis part le jour même")) {
    throw new Error(`the model was not given the thread and the entry: ${asked}`);
  }
  step("the model drafts a reply from the thread and the knowledge base, into the reply box");

  await page.getByRole("button", { name: "Summarise the thread" }).click();
  await page.locator("#summary", { hasText: "En attente : le renvoi." }).waitFor();
  step("the model summarises the thread");

  const answer = "Désolée, un nouveau colis part aujourd'hui.";
  await page.getByLabel("Reply", { exact: true }).fill(answer);
  await page.getByLabel("Reply", { exact: true }).press("Enter");
  await page.getByText("Sent.").waitFor();
  await phoneReceived(answer);
  await thread.locator(".bubble.sent", { hasText: answer }).waitFor();
  step("Ana's answer reaches the customer's phone and the thread");

  await page.getByLabel("Canned reply").selectOption("replacement");
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await phoneReceived("Désolée ! Ici Ana : un nouveau colis part aujourd’hui.");
  step("a canned reply is rendered with the agent's name and sent");

  await page.getByLabel("Template (outside the window)").selectOption("colis_remplace");
  const languages = await page.locator("#template-language option").allTextContents();
  if (!languages.includes("fr") || !languages.includes("en")) throw new Error(`the template's languages: ${languages}`);
  await page.getByLabel("Its language").selectOption("en");
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await phoneReceived("Your replacement parcel has shipped.");
  // The phone may get it before the console has the API's answer, which clears the picker.
  await page.waitForFunction(() => document.getElementById("template").value === "", null, { timeout: 10000 })
    .catch(() => { throw new Error("the template stayed picked after sending"); });
  step("a template picked from the tenant's templates, in the language picked, is sent");
  await screenshot(page, "console.png", { fullPage: true });

  await page.getByRole("button", { name: "Resolve" }).click();
  await page.locator("#about", { hasText: "resolved" }).waitFor();
  step("the conversation is resolved");

  await page.locator("#lang").selectOption("fr");
  await page.getByRole("heading", { name: "Console Relais" }).waitFor();
  step("the console speaks French");

  await fitsAPhone(page, "console-phone.png");
  step("it fits a phone-sized screen");
});
