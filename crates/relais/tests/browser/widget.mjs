// The web chat widget in a real browser, on a page of another site: a visitor opens it,
// the bot asks with quick replies, the visitor taps one, fills in a form, the bot hands
// off, Ana sees the conversation appear live in the console, sees the visitor typing and answers (the
// visitor sees her typing), the visitor sees the answer; the visitor attaches an image,
// which the widget and Ana's thread show; the server is killed and started again, the widget reconnects and shows nothing twice; a
// reload brings the history back. Run by crates/relais/tests/browser.rs, which serves the
// page (PAGE_URL) and restarts the server when this script asks (a line on stdout,
// answered on stdin).

import { createInterface } from "node:readline";
import { api, base, run, screenshot, step } from "./harness.mjs";

const page_url = process.env.PAGE_URL;
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function restartServer() {
  console.log("RESTART-SERVER");
  const answer = await lines.next();
  if (answer.value !== "restarted") throw new Error(`the test did not restart the server: ${answer.value}`);
}

await run(async (visitor, problems) => {
  await api("PUT", "/v1/teams/support", { assignment: "round_robin", default: true });
  await api("POST", "/v1/agents", { email: "ana@example.com", name: "Ana", password: "correct horse battery", teams: ["support"] });
  await api("PUT", "/v1/flows/welcome", {
    entry: { new_conversation: true, channels: ["webchat"] },
    start: "ask",
    nodes: {
      ask: { type: "ask", var: "topic", next: "rdv", content: { text: "Bonjour ! C'est à propos de ?",
        quick_replies: [{ title: "Ma commande", payload: "ORDER" }, { title: "Autre chose", payload: "OTHER" }] } },
      rdv: { type: "ask", attribute: "rendez_vous", validate: { type: "form" }, next: "handoff", content: { form: {
        title: "Un rappel ?", text: "Choisissez quand nous vous appelons.", submit: "Confirmer", fields: [
          { name: "date", label: "Date", kind: "date" },
          { name: "creneau", label: "Créneau", kind: "choice", options: ["10:00", "14:00"] },
          { name: "note", label: "Un mot", required: false },
        ] } } },
      handoff: { type: "handoff", team: "support", text: "Je vous passe un conseiller." },
    },
  });

  await visitor.goto(page_url);
  const widget = visitor.locator("[data-relais-widget]");
  await widget.getByRole("button", { name: "Open the chat" }).click();
  const log = widget.getByRole("log");
  // The message box, not the fields of a form in the log.
  const compose = widget.locator(".panel > form input[name=text]");
  await compose.fill("Bonjour <script>alert(1)</script>");
  await compose.press("Enter");
  await log.getByText("Bonjour ! C'est à propos de ?").waitFor({ timeout: 15000 });
  step("a visitor on another site writes; the bot asks with quick replies");

  await widget.getByRole("button", { name: "Ma commande" }).click();
  await log.getByText("Un rappel ?").waitFor({ timeout: 15000 });
  if (await widget.getByRole("button", { name: "Autre chose" }).count() !== 0) throw new Error("the quick replies stayed after the answer");
  step("the visitor taps a quick reply; the bot asks for a call-back time with a form");

  await widget.getByRole("button", { name: "Confirmer" }).click();
  if (await log.getByText("Je vous passe un conseiller.").count() !== 0) throw new Error("an empty required form was sent");
  await widget.getByLabel("Date").fill("2026-12-24");
  await widget.getByLabel("Créneau").selectOption("14:00");
  await screenshot(visitor, "widget-form.png");
  await widget.getByRole("button", { name: "Confirmer" }).click();
  await log.getByText("Je vous passe un conseiller.").waitFor({ timeout: 15000 });
  if (!(await widget.getByRole("button", { name: "Confirmer" }).isDisabled())) throw new Error("the form can be sent twice");
  const contacts = (await api("GET", "/v1/contacts")).data;
  const booked = contacts.map((c) => c.attributes && c.attributes.rendez_vous).find(Boolean);
  if (!booked || booked.date !== "2026-12-24" || booked.creneau !== "14:00" || "note" in booked) {
    throw new Error(`the form's values on the contact: ${JSON.stringify(booked)}`);
  }
  step("the visitor fills in the form (refused while a required field is empty); its values are on the contact and the bot hands off");
  await screenshot(visitor, "widget.png");

  const agent = await visitor.context().browser().newPage({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
  agent.on("console", (m) => { if (m.type() === "error") problems.push(`console (agent): ${m.text()}`); });
  await agent.goto(`${base}/console`);
  await agent.getByLabel("E-mail").fill("ana@example.com");
  await agent.getByLabel("Password").fill("correct horse battery");
  await agent.getByRole("button", { name: "Log in" }).click();
  const item = agent.locator("#conversations li", { hasText: "webchat" });
  await item.waitFor({ timeout: 15000 });
  await item.getByRole("button").click();
  await agent.locator("#thread .bubble.received", { hasText: "Ma commande" }).waitFor();
  await agent.locator("#thread .bubble.received", { hasText: "Créneau: 14:00" }).waitFor();
  await agent.locator("#thread .bubble", { hasText: "<script>alert(1)</script>" }).waitFor();
  // The widget reports typing at most once per 2.5 s, and the first message's typing was
  // reported: on a fast machine the steps above take less than that.
  await new Promise((r) => setTimeout(r, 2600));
  await compose.pressSequentially("Vous");
  await agent.getByText("The customer is typing…").waitFor({ timeout: 10000 });
  await compose.fill("");
  step("Ana sees the visitor typing");
  const answer = "Bonjour, je regarde votre commande tout de suite.";
  await agent.getByLabel("Reply", { exact: true }).fill(answer);
  await widget.getByText("typing…").waitFor({ timeout: 10000 });
  step("the visitor sees Ana typing");
  await agent.getByLabel("Reply", { exact: true }).press("Enter");
  await log.getByText(answer).waitFor({ timeout: 15000 });
  step("Ana sees the conversation in the console and answers; the visitor sees the answer");

  // The panel is open: the widget reports the answer read.
  const open = (await api("GET", "/v1/conversations?state=open,pending")).data[0];
  let status = null;
  for (let i = 0; i < 40 && status !== "read"; i++) {
    const thread = await api("GET", `/v1/conversations/${open.id}`);
    status = thread.messages.find((m) => m.direction === "out" && m.content.text === answer)?.status;
    if (status !== "read") await new Promise((r) => setTimeout(r, 250));
  }
  if (status !== "read") throw new Error(`the answer seen in the open panel is ${status}, not read`);
  step("the answer seen in the open panel is read");

  // Rich content: a carousel of cards with a reply button and a link each.
  const conversationId = (await api("GET", "/v1/conversations?state=open,pending")).data[0].id;
  const card = (title, payload) => ({ title, text: "49 €", buttons: [
    { type: "reply", title: `Je prends ${title}`, payload },
    { type: "url", title: "Voir", url: `https://shop.example/${payload}` }] });
  await api("POST", `/v1/conversations/${conversationId}/messages`, {
    content: { carousel: [card("le sac", "BAG"), card("la valise", "CASE")] } });
  await widget.locator(".carousel .card").nth(1).waitFor({ timeout: 15000 });
  const link = widget.getByRole("link", { name: "Voir" }).first();
  if ((await link.getAttribute("href")) !== "https://shop.example/BAG") throw new Error("the card's link is wrong");
  await widget.getByRole("button", { name: "Je prends la valise" }).click();
  await agent.locator("#thread .bubble.received", { hasText: "Je prends la valise" }).waitFor({ timeout: 15000 });
  step("a carousel shows its cards; a card's button answers, and Ana sees the answer");
  await screenshot(visitor, "widget-carousel.png");

  // An image: the visitor attaches a PNG; it shows in the widget and in Ana's thread.
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
  const loaded = (img) => img.evaluate((el) => el.complete && el.naturalWidth > 0);
  const waitLoaded = async (img, who) => {
    await img.waitFor({ timeout: 15000 });
    for (let i = 0; i < 60 && !(await loaded(img)); i++) await new Promise((r) => setTimeout(r, 250));
    if (!(await loaded(img))) throw new Error(`${who} does not show the image`);
  };
  const attach = widget.getByRole("button", { name: "Attach an image" });
  await attach.waitFor();
  await widget.locator("input[type=file]").setInputFiles({ name: "note.txt", mimeType: "text/plain", buffer: Buffer.from("hello") });
  await log.getByText("Only JPEG, PNG, GIF or WebP images can be sent.").waitFor({ timeout: 5000 });
  await widget.locator("input[type=file]").setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: png });
  await waitLoaded(log.locator(".msg.in img").first(), "the widget");
  await log.locator(".msg.in.pending img").waitFor({ state: "detached", timeout: 15000 });
  await waitLoaded(agent.locator("#thread .bubble.received img").first(), "Ana's thread");
  const alt = await agent.locator("#thread .bubble.received img").first().getAttribute("alt");
  if (!alt) throw new Error("the image in Ana's thread has no alt text");
  step("the visitor attaches an image (a text file is refused in the widget); both the widget and Ana's thread show it");

  await agent.close();

  // Nothing shows twice: every shown message has its own id, and each text shows once.
  const noneTwice = async () => {
    const ids = await log.locator("[data-id]").evaluateAll((els) => els.map((e) => e.dataset.id));
    if (new Set(ids).size !== ids.length) throw new Error(`a message shows twice: ${ids.join(", ")}`);
    for (const text of [answer, "Je prends la valise", "Ma commande"]) {
      const count = await log.locator(".msg", { hasText: text }).count();
      if (count !== 1) throw new Error(`"${text}" shows ${count} times`);
    }
    if (await widget.locator(".carousel").count() !== 1) throw new Error("the carousel shows twice");
    const images = await log.locator(".msg.in img").count();
    if (images !== 1) throw new Error(`the visitor's image shows ${images} times`);
  };
  await noneTwice();
  await restartServer();
  await widget.getByText("Reconnecting…").waitFor({ state: "hidden", timeout: 30000 });
  const conversation = (await api("GET", "/v1/conversations?state=open,pending")).data[0];
  const later = "Votre colis part ce soir.";
  await api("POST", `/v1/conversations/${conversation.id}/messages`, { content: { text: later } });
  await log.getByText(later).waitFor({ timeout: 15000 });
  await noneTwice();
  step("after a kill -9 and a restart, the widget reconnects, gets what is sent, and shows nothing twice");

  await visitor.reload();
  await widget.getByRole("button", { name: "Open the chat" }).click();
  await log.getByText(later).waitFor({ timeout: 15000 });
  await noneTwice();
  await waitLoaded(log.locator(".msg.in img").first(), "the widget after a reload");
  if (await log.locator("script").count() !== 0) throw new Error("markup the visitor typed became an element");
  step("a reload brings the visitor's history back, once");
});
