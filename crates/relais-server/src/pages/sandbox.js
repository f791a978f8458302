// The sandbox page: the `sim` channel's simulated phones side by side, what each received
// and sent, a reply box per phone, and a form that sends from Relais. It uses the public
// REST API and the event stream only. Everything a phone shows is inserted as text.

import {
  $, api, applyTexts, liveEvents, preferredLanguage, rememberLanguage, showLive, signInForm, translator,
} from "/assets/session.js";

const TEXTS = {
  en: {
    title: "Relais sandbox", language: "Language", signOut: "Sign out",
    signInTitle: "Open the sandbox",
    signInHelp: "Paste an API key of your tenant. The first start of the server wrote one to relais-data/admin-api-key.",
    apiKey: "API key", open: "Open", badKey: "This key was refused.",
    sendTitle: "Send from Relais", sendHelp: "A message on the sim channel, as POST /v1/messages sends it.",
    to: "To", text: "Text", send: "Send", sent: "Accepted: {id}",
    addTitle: "Add a phone", addHelp: "A phone that writes first, as a customer would.",
    number: "Number", add: "Add",
    empty: "No phone has received or sent anything yet: send a message, or add a phone.",
    reply: "Reply", replyTo: "Reply from {number}", oneMessage: "1 message", messages: "{n} messages",
    live: "● live", reconnecting: "○ reconnecting…", failed: "Failed: {why}",
  },
  fr: {
    title: "Bac à sable Relais", language: "Langue", signOut: "Se déconnecter",
    signInTitle: "Ouvrir le bac à sable",
    signInHelp: "Collez une clé d'API de votre tenant. Le premier démarrage du serveur en a écrit une dans relais-data/admin-api-key.",
    apiKey: "Clé d'API", open: "Ouvrir", badKey: "Cette clé a été refusée.",
    sendTitle: "Envoyer depuis Relais", sendHelp: "Un message sur le canal sim, comme POST /v1/messages l'envoie.",
    to: "Destinataire", text: "Texte", send: "Envoyer", sent: "Accepté : {id}",
    addTitle: "Ajouter un téléphone", addHelp: "Un téléphone qui écrit le premier, comme un client.",
    number: "Numéro", add: "Ajouter",
    empty: "Aucun téléphone n'a encore reçu ni envoyé de message : envoyez-en un, ou ajoutez un téléphone.",
    reply: "Répondre", replyTo: "Réponse de {number}", oneMessage: "1 message", messages: "{n} messages",
    live: "● en direct", reconnecting: "○ reconnexion…", failed: "Échec : {why}",
  },
};

// Phones shown at most, the most recently active first.
const PHONES_SHOWN = 12;
// A refresh after events waits this long, so that a burst of events makes one refresh.
const REFRESH_DEBOUNCE_MS = 120;
// Without the event stream the page still catches up this often.
const POLL_MS = 5000;

let lang = preferredLanguage(TEXTS);
const t = translator(TEXTS, () => lang);
let key = null;
const added = new Set(); // numbers added on this page that have no message yet
const shown = new Map(); // number -> {card, thread, count, signature}
let stream = null;
let refreshTimer = null;

function applyLanguage() {
  applyTexts(t, lang);
  $("lang").value = lang;
  for (const { card } of shown.values()) translateCard(card);
  if (stream) showLive(t, stream.live);
}

const call = (method, path, body) => api(key, method, path, body);

function formatTime(at) {
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function translateCard(card) {
  const number = card.dataset.number;
  const input = card.querySelector("input");
  input.setAttribute("aria-label", t("replyTo", { number }));
  input.placeholder = t("reply");
  card.querySelector("form button").textContent = t("reply");
}

function phoneCard(number) {
  const card = document.createElement("article");
  card.className = "phone";
  card.dataset.number = number;
  const header = document.createElement("header");
  const title = document.createElement("span");
  title.textContent = number;
  const count = document.createElement("small");
  header.append(title, count);
  const thread = document.createElement("div");
  thread.className = "thread";
  thread.setAttribute("role", "log");
  thread.setAttribute("aria-label", number);
  const form = document.createElement("form");
  const input = document.createElement("input");
  input.name = "reply";
  input.autocomplete = "off";
  input.required = true;
  const button = document.createElement("button");
  button.type = "submit";
  form.append(input, button);
  const result = document.createElement("p");
  result.className = "result";
  result.setAttribute("role", "status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    button.disabled = true;
    result.textContent = "";
    result.className = "result";
    try {
      await call("POST", `/v1/sim/phones/${encodeURIComponent(number)}/reply`, { text });
      input.value = "";
      added.delete(number);
      await refresh();
    } catch (e) {
      if (e.status === 401) return session.refused();
      result.textContent = t("failed", { why: e.message });
      result.className = "result error";
    } finally {
      button.disabled = false;
      input.focus();
    }
  });
  card.append(header, thread, form, result);
  translateCard(card);
  return { card, thread, count, signature: "" };
}

function renderThread(entry, messages) {
  const last = messages[messages.length - 1];
  const signature = `${messages.length}:${last ? last.id : ""}`;
  entry.count.textContent = messages.length === 1 ? t("oneMessage") : t("messages", { n: messages.length });
  if (signature === entry.signature) return;
  entry.signature = signature;
  const atBottom = entry.thread.scrollHeight - entry.thread.scrollTop - entry.thread.clientHeight < 40;
  const bubbles = messages.map((m) => {
    const bubble = document.createElement("div");
    bubble.className = `bubble ${m.direction === "sent" ? "sent" : "received"}`;
    bubble.textContent = m.text;
    const time = document.createElement("time");
    time.dateTime = m.at;
    time.textContent = formatTime(m.at);
    bubble.append(time);
    return bubble;
  });
  entry.thread.replaceChildren(...bubbles);
  if (atBottom || entry.thread.dataset.seen !== "yes") {
    entry.thread.scrollTop = entry.thread.scrollHeight;
    entry.thread.dataset.seen = "yes";
  }
}

let refreshing = null;
async function refresh() {
  if (!key) return;
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const listed = await call("GET", "/v1/sim/phones");
      const numbers = [...added, ...listed.phones.map((p) => p.number).filter((n) => !added.has(n))].slice(0, PHONES_SHOWN);
      const threads = await Promise.all(numbers.map((n) => added.has(n)
        ? Promise.resolve({ messages: [] })
        : call("GET", `/v1/sim/phones/${encodeURIComponent(n)}/messages`)));
      const container = $("phones");
      numbers.forEach((number, i) => {
        let entry = shown.get(number);
        if (!entry) {
          entry = phoneCard(number);
          shown.set(number, entry);
        }
        if (container.children[i] !== entry.card) container.insertBefore(entry.card, container.children[i] || null);
        renderThread(entry, threads[i].messages);
      });
      for (const [number, entry] of shown) {
        if (!numbers.includes(number)) { entry.card.remove(); shown.delete(number); }
      }
      $("empty").hidden = numbers.length > 0;
    } catch (e) {
      if (e.status === 401) session.refused();
      else console.warn("sandbox refresh failed:", e.message);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, REFRESH_DEBOUNCE_MS);
}

function connect() {
  stream = liveEvents(key, {
    onEvent: refreshSoon,
    onState(live) {
      showLive(t, live);
      if (live) refreshSoon();
    },
  });
}

function showResult(el, text, ok) {
  el.textContent = text;
  el.className = ok ? "result ok" : "result error";
}

$("lang").addEventListener("change", () => {
  lang = $("lang").value;
  rememberLanguage(lang);
  applyLanguage();
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("send-result");
  const button = event.submitter || $("send-form").querySelector("button");
  button.disabled = true;
  try {
    const accepted = await call("POST", "/v1/messages", {
      to: $("send-to").value.trim(), channel: "sim", purpose: "transactional",
      content: { text: $("send-text").value },
    });
    showResult(result, t("sent", { id: accepted.id }), true);
    $("send-text").value = "";
    refreshSoon();
  } catch (e) {
    if (e.status === 401) return session.refused();
    showResult(result, t("failed", { why: e.message }), false);
  } finally {
    button.disabled = false;
  }
});

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("add-result");
  const raw = $("add-number").value.trim();
  try {
    // The server reads the number (national numbers with its default country).
    const phone = await call("GET", `/v1/sim/phones/${encodeURIComponent(raw)}/messages`);
    if (phone.messages.length === 0) added.add(phone.number);
    $("add-number").value = "";
    showResult(result, "", true);
    await refresh();
  } catch (e) {
    if (e.status === 401) return session.refused();
    showResult(result, t("failed", { why: e.message }), false);
  }
});

setInterval(() => { if (key && !document.hidden) refresh(); }, POLL_MS);
applyLanguage();
const session = signInForm({
  t,
  check: (candidate) => api(candidate, "GET", "/v1/sim/phones"),
  opened(candidate) {
    key = candidate;
    $("sandbox").hidden = false;
    connect();
    refresh();
  },
  closed() {
    key = null;
    if (stream) { stream.close(); stream = null; }
    $("sandbox").hidden = true;
    $("live").textContent = "";
  },
});
