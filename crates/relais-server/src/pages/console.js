// The agent console: an agent logs in, sees the conversations they may answer in the
// queue's order (urgency, sentiment, VIP, SLA due time, waiting time), filtered by state,
// team, channel and assignee, with unread counts; opens one to read the customer's whole thread across
// channels with what NLU read in each message, their profile and consents, the private
// notes; replies (a template picked from the tenant's templates outside the
// customer-service window, or a canned reply), takes, hands back and resolves; when the
// tenant configured a language model, drafts a reply and summarises the thread. Built on
// the REST API and the event stream only, with the agent's session token.

import {
  $, ApiError, api, applyTexts, imageUrl, liveEvents, preferredLanguage, rememberLanguage, showLive, storeKey, storedKey,
  translator,
} from "/assets/session.js";

const TEXTS = {
  en: {
    title: "Relais console", language: "Language", signOut: "Sign out",
    loginTitle: "Agent login", email: "E-mail", password: "Password", logIn: "Log in",
    badLogin: "This e-mail and password were refused.", failed: "Failed: {why}",
    state: "State", waitingOrOpen: "Waiting or open", waiting: "Waiting", openState: "Open",
    bot: "With the bot", resolved: "Resolved", team: "Team", allTeams: "All teams",
    channel: "Channel", allChannels: "All channels", assignee: "Assigned to", anyone: "Anyone",
    meOnly: "Me", nobody: "Nobody", noConversations: "No conversation here.",
    pick: "Pick a conversation.", take: "Take", toQueue: "Back to the queue", resolve: "Resolve",
    profile: "Profile", consents: "Consents", notes: "Private notes", addNote: "Add a note",
    save: "Save", reply: "Reply", canned: "Canned reply", noCanned: "None",
    template: "Template (outside the window)", templateLanguage: "Its language", send: "Send",
    sentOk: "Sent.", windowOpen: "The {channel} window closes {at}.",
    windowClosed: "The {channel} window closed {at}: only an approved template may be sent.",
    live: "● live", reconnecting: "○ reconnecting…", waitingSince: "waits since {at}",
    due: "answer due {at}", breached: "SLA breached", assignedTo: "assigned to {who}",
    unassigned: "unassigned", you: "you", noConsent: "No consent recorded.",
    urgent: "urgent", negative_sentiment: "negative", vip: "VIP", new: "new",
    me: "{name} ({role})", noProfile: "The profile is not available to you.",
    customerTyping: "The customer is typing…", customerImage: "Image sent by the customer",
    imageUnavailable: "[image not available]",
    noTemplate: "None", anyLanguage: "default", suggest: "Suggest a reply",
    summarize: "Summarise the thread", thinking: "Asking the model…",
    suggested: "Suggestion from {sources}: read it before sending.",
    noSuggestion: "No suggestion: {why}.", summaryTitle: "Summary",
    no_relevant_entry: "the knowledge base has nothing on this",
    model_timeout: "the model did not answer in time", model_error: "the model failed",
    empty_answer: "the model answered nothing", model_declined: "the model found no answer",
    missing_citation: "the model cited no source", unknown_citation: "the model cited an unknown source",
  },
  fr: {
    title: "Console Relais", language: "Langue", signOut: "Se déconnecter",
    loginTitle: "Connexion agent", email: "E-mail", password: "Mot de passe", logIn: "Se connecter",
    badLogin: "Cet e-mail et ce mot de passe ont été refusés.", failed: "Échec : {why}",
    state: "État", waitingOrOpen: "En attente ou ouvertes", waiting: "En attente", openState: "Ouvertes",
    bot: "Avec le bot", resolved: "Résolues", team: "Équipe", allTeams: "Toutes les équipes",
    channel: "Canal", allChannels: "Tous les canaux", assignee: "Assignée à", anyone: "N'importe qui",
    meOnly: "Moi", nobody: "Personne", noConversations: "Aucune conversation ici.",
    pick: "Choisissez une conversation.", take: "Prendre", toQueue: "Remettre en file", resolve: "Résoudre",
    profile: "Profil", consents: "Consentements", notes: "Notes privées", addNote: "Ajouter une note",
    save: "Enregistrer", reply: "Réponse", canned: "Réponse type", noCanned: "Aucune",
    template: "Modèle (hors de la fenêtre)", templateLanguage: "Sa langue", send: "Envoyer",
    sentOk: "Envoyé.", windowOpen: "La fenêtre {channel} se ferme {at}.",
    windowClosed: "La fenêtre {channel} s'est fermée {at} : seul un modèle approuvé peut être envoyé.",
    live: "● en direct", reconnecting: "○ reconnexion…", waitingSince: "attend depuis {at}",
    due: "réponse due {at}", breached: "SLA dépassé", assignedTo: "assignée à {who}",
    unassigned: "non assignée", you: "vous", noConsent: "Aucun consentement enregistré.",
    urgent: "urgent", negative_sentiment: "négatif", vip: "VIP", new: "nouveau",
    me: "{name} ({role})", noProfile: "Le profil ne vous est pas accessible.",
    customerTyping: "Le client écrit…", customerImage: "Image envoyée par le client",
    imageUnavailable: "[image indisponible]",
    noTemplate: "Aucun", anyLanguage: "par défaut", suggest: "Suggérer une réponse",
    summarize: "Résumer le fil", thinking: "Le modèle réfléchit…",
    suggested: "Suggestion tirée de {sources} : relisez-la avant d'envoyer.",
    noSuggestion: "Pas de suggestion : {why}.", summaryTitle: "Résumé",
    no_relevant_entry: "la base de connaissances n'en dit rien",
    model_timeout: "le modèle n'a pas répondu à temps", model_error: "le modèle a échoué",
    empty_answer: "le modèle n'a rien répondu", model_declined: "le modèle n'a pas trouvé de réponse",
    missing_citation: "le modèle n'a cité aucune source", unknown_citation: "le modèle a cité une source inconnue",
  },
};

const TOKEN_ITEM = "relais.console.session";
const LIST_LIMIT = 100;
const REFRESH_DEBOUNCE_MS = 150;
const POLL_MS = 15000;

let lang = preferredLanguage(TEXTS);
const t = translator(TEXTS, () => lang);
let token = null;
let me = null;
let stream = null;
let current = null; // the conversation shown
let conversations = [];
const unread = new Map();
const agentNames = new Map();
let listTimer = null;
let typedAt = 0;
let templates = [];
let customerTypingTimer = null;
const CUSTOMER_TYPING_MS = 5000;
const call = (method, path, body) => api(token, method, path, body);

function when(at) {
  if (!at) return "";
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Object URLs of the customers' images, by API path: the thread is drawn again on every
// event, and an <img> cannot send the agent's token, so each image is fetched once.
const mediaUrls = new Map();

function mediaImage(media) {
  const img = el("img", "media");
  img.alt = t("customerImage");
  const path = String(media.url || "");
  if (!path.startsWith("/v1/media/")) return img;
  if (!mediaUrls.has(path)) mediaUrls.set(path, imageUrl(token, path));
  mediaUrls.get(path).then((url) => { img.src = url; }, () => {
    mediaUrls.delete(path);
    img.replaceWith(el("span", "hint", t("imageUnavailable")));
  });
  return img;
}

function contentText(content) {
  if (!content || typeof content !== "object") return String(content ?? "");
  if (typeof content.text === "string") return content.text;
  if (content.template) return `[${content.template}${content.language ? ` · ${content.language}` : ""}]`;
  return JSON.stringify(content);
}

function showLogin(message = "") {
  token = null;
  storeKey(null, TOKEN_ITEM);
  if (stream) { stream.close(); stream = null; }
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("me").textContent = "";
  $("live").textContent = "";
  $("login-error").textContent = message;
  $("email").focus();
}

function failed(e, result) {
  if (e instanceof ApiError && e.status === 401) return showLogin(t("badLogin"));
  if (result) {
    result.textContent = t("failed", { why: e.message });
    result.className = "result error";
  } else {
    console.warn(e.message);
  }
}

async function open(candidate) {
  token = candidate;
  try {
    me = await call("GET", "/v1/agents/me");
  } catch (e) {
    showLogin(e.status === 401 ? "" : t("failed", { why: e.message }));
    return;
  }
  storeKey(token, TOKEN_ITEM);
  $("login").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  $("me").textContent = t("me", { name: me.name, role: me.role });
  agentNames.set(me.id, me.name);
  await Promise.all([loadTeams(), loadCanned(), loadAgents(), loadTemplates(), loadAssist()]);
  connect();
  await loadList();
}

async function loadTeams() {
  try {
    const teams = await call("GET", "/v1/teams");
    const select = $("filter-team");
    for (const team of teams) {
      if ([...select.options].some((o) => o.value === team.name)) continue;
      select.append(new Option(team.name, team.name));
    }
  } catch (e) { failed(e); }
}

async function loadAgents() {
  try {
    for (const agent of await call("GET", "/v1/agents")) agentNames.set(agent.id, agent.name);
  } catch { /* an agent may not list agents: ids are shown instead */ }
}

async function loadCanned() {
  try {
    const canned = await call("GET", "/v1/canned-replies");
    const select = $("canned");
    for (const c of canned) select.append(new Option(c.name, c.name));
  } catch (e) { failed(e); }
}

async function loadTemplates() {
  try {
    templates = (await call("GET", "/v1/templates")).data;
    const select = $("template");
    for (const template of templates) {
      if (![...select.options].some((o) => o.value === template.name)) select.append(new Option(template.name, template.name));
    }
    showTemplateLanguages();
  } catch (e) { failed(e); }
}

// The languages of the template picked; none picked or one without variants per language
// leaves the choice to the server (the contact's language).
function showTemplateLanguages() {
  const picked = templates.find((tpl) => tpl.name === $("template").value);
  const languages = [...new Set((picked ? picked.variants : []).map((v) => v.language).filter(Boolean))];
  const select = $("template-language");
  const chosen = select.value;
  select.replaceChildren(new Option(t("anyLanguage"), ""), ...languages.map((l) => new Option(l, l)));
  if (languages.includes(chosen)) select.value = chosen;
  select.disabled = !picked;
}

// Reply suggestions and summaries need the tenant's language model: without one the
// buttons are not shown at all.
async function loadAssist() {
  try {
    $("assist").hidden = !(await call("GET", "/v1/nlu/llm")).configured;
  } catch (e) {
    $("assist").hidden = true;
    failed(e);
  }
}

// The thread as the model reads it: the customer's messages and what was sent to them.
function transcript(c) {
  return c.messages
    .map((m) => ({ speaker: m.direction === "in" ? "customer" : "agent", text: contentText(m.content) }))
    .filter((m) => m.text.trim());
}

async function assist(path, show) {
  if (!current) return;
  const result = $("assist-result");
  const buttons = [$("suggest"), $("summarize")];
  for (const b of buttons) b.disabled = true;
  result.textContent = t("thinking");
  result.className = "hint";
  try {
    show(await call("POST", path, { messages: transcript(current) }));
  } catch (e) {
    failed(e, result);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function query() {
  const params = new URLSearchParams({ state: $("filter-state").value, order: "priority", limit: String(LIST_LIMIT) });
  if ($("filter-team").value) params.set("team", $("filter-team").value);
  if ($("filter-assignee").value) params.set("assignee", $("filter-assignee").value);
  return params.toString();
}

async function loadList() {
  if (!token) return;
  try {
    const page = await call("GET", `/v1/conversations?${query()}`);
    conversations = page.data;
    renderList();
  } catch (e) { failed(e); }
}

function loadListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(loadList, REFRESH_DEBOUNCE_MS);
}

function renderList() {
  const channelSelect = $("filter-channel");
  for (const c of conversations) {
    if (![...channelSelect.options].some((o) => o.value === c.channel)) channelSelect.append(new Option(c.channel, c.channel));
  }
  const channel = channelSelect.value;
  const shown = conversations.filter((c) => !channel || c.channel === channel);
  const items = shown.map((c) => {
    const li = el("li");
    li.dataset.id = c.id;
    const button = el("button");
    button.type = "button";
    if (current && current.id === c.id) button.setAttribute("aria-current", "true");
    const top = el("span", "line");
    top.append(el("span", "address", c.address));
    const badges = el("span");
    const count = unread.get(c.id) || 0;
    if (count > 0) badges.append(el("span", "badge unread", String(count)));
    for (const reason of c.priority_reasons) badges.append(el("span", `badge ${reason === "urgent" ? "urgent" : ""}`, t(reason)));
    if (c.sla && c.sla.breached_at) badges.append(el("span", "badge breached", t("breached")));
    badges.append(el("span", "badge", c.channel));
    top.append(badges);
    const preview = el("span", "preview", `${c.last_message.direction === "out" ? "→ " : ""}${c.last_message.media ? "📎 " : ""}${c.last_message.text ?? ""}`);
    const meta = el("span", "preview", [
      c.state,
      c.team || "",
      c.waiting_since ? t("waitingSince", { at: when(c.waiting_since) }) : "",
    ].filter(Boolean).join(" · "));
    button.append(top, preview, meta);
    button.addEventListener("click", () => show(c.id));
    li.append(button);
    return li;
  });
  $("conversations").replaceChildren(...items);
  $("no-conversations").hidden = items.length > 0;
}

async function show(id) {
  unread.delete(id);
  try {
    const c = await call("GET", `/v1/conversations/${encodeURIComponent(id)}`);
    current = c;
    renderConversation(c);
    renderList();
    loadProfile(c.contact);
  } catch (e) { failed(e); }
}

function renderConversation(c) {
  $("pick").hidden = true;
  $("conversation").hidden = false;
  $("who").textContent = c.address;
  const assignee = c.assignee_id
    ? t("assignedTo", { who: c.assignee_id === me.id ? t("you") : agentNames.get(c.assignee_id) || c.assignee_id })
    : t("unassigned");
  const sla = c.sla ? (c.sla.breached_at ? t("breached") : t("due", { at: when(c.sla.due_at) })) : "";
  $("about").textContent = [c.channel, c.state, c.team, assignee, sla].filter(Boolean).join(" · ");
  $("take").hidden = c.assignee_id === me.id || c.state === "resolved";
  $("to-queue").hidden = !c.assignee_id;
  $("resolve").hidden = c.state === "resolved";
  const thread = $("thread");
  if (thread.dataset.shown !== c.id) {
    // What the model said of another conversation is not shown under this one.
    $("summary").hidden = true;
    $("summary").textContent = "";
    $("assist-result").textContent = "";
    $("customer-typing").textContent = "";
  }
  const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
  const bubbles = c.messages.map((m) => {
    const bubble = el("div", `bubble ${m.direction === "in" ? "received" : "sent"}`, contentText(m.content));
    bubble.dataset.id = m.id;
    if (m.direction === "in" && m.content && m.content.media) bubble.prepend(mediaImage(m.content.media));
    const tags = el("div", "tags");
    const a = m.annotations;
    if (a) {
      if (a.intent && a.intent.name && !a.intent.out_of_scope) tags.append(el("span", "badge", a.intent.name));
      if (a.sentiment && a.sentiment.label) tags.append(el("span", "badge", a.sentiment.label));
      if (a.urgency && a.urgency.urgent) tags.append(el("span", "badge urgent", t("urgent")));
      if (a.language) tags.append(el("span", "badge", a.language));
    }
    if (m.status) tags.append(el("span", "badge", m.status));
    tags.append(el("span", "badge", m.channel));
    const time = el("time", "", when(m.at));
    time.dateTime = m.at;
    bubble.append(tags, time);
    return bubble;
  });
  thread.replaceChildren(...bubbles);
  if (atBottom || thread.dataset.shown !== c.id) {
    thread.scrollTop = thread.scrollHeight;
    thread.dataset.shown = c.id;
  }
  $("notes").replaceChildren(...c.notes.map((n) => {
    const li = el("li", "", n.text);
    li.append(el("div", "hint", `${agentNames.get(n.agent_id) || ""} ${when(n.created_at)}`.trim()));
    return li;
  }));
  const closes = c.window_closes_at ? new Date(c.window_closes_at) : null;
  $("window").textContent = !closes ? "" : closes < new Date()
    ? t("windowClosed", { channel: c.channel, at: when(c.window_closes_at) })
    : t("windowOpen", { channel: c.channel, at: when(c.window_closes_at) });
  $("window").className = closes && closes < new Date() ? "hint error" : "hint";
}

async function loadProfile(contactId) {
  const profile = $("profile");
  const consents = $("consents");
  try {
    const [contact, ledger] = await Promise.all([
      call("GET", `/v1/contacts/${encodeURIComponent(contactId)}`),
      call("GET", `/v1/contacts/${encodeURIComponent(contactId)}/consents`),
    ]);
    const rows = [];
    for (const identity of contact.identities || []) rows.push([identity.channel, identity.address]);
    for (const [name, value] of Object.entries(contact.attributes || {})) rows.push([name, typeof value === "string" ? value : JSON.stringify(value)]);
    for (const answer of contact.answers || []) rows.push([answer.attribute ?? answer.name ?? "", typeof answer.value === "string" ? answer.value : JSON.stringify(answer.value)]);
    if (contact.locale) rows.push(["locale", contact.locale]);
    profile.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", v)]));
    const current = ledger.current || [];
    consents.replaceChildren(...(current.length ? current.map((r) => {
      const li = el("li", "", `${r.channel} · ${r.purpose}: ${r.status}`);
      if (r.proof) li.append(el("div", "hint", `“${r.proof}”`));
      return li;
    }) : [el("li", "hint", t("noConsent"))]));
  } catch (e) {
    if (e.status === 401) return showLogin(t("badLogin"));
    profile.replaceChildren(el("dd", "hint", t("noProfile")));
    consents.replaceChildren();
  }
}

async function act(method, path, body) {
  if (!current) return;
  try {
    await call(method, path, body);
    await show(current.id);
    loadListSoon();
  } catch (e) { failed(e, $("reply-result")); }
}

function connect() {
  stream = liveEvents(token, {
    onState(live) {
      showLive(t, live);
      if (live) loadListSoon();
    },
    onEvent(event) {
      const id = event.conversation_id;
      if (event.type === "message.received" && id && (!current || current.id !== id)) {
        unread.set(id, (unread.get(id) || 0) + 1);
      }
      if (event.type === "typing" && event.data && event.data.who === "visitor" && current && current.id === id) {
        // Shown for a few seconds; a visitor who keeps typing reports it again.
        $("customer-typing").textContent = t("customerTyping");
        clearTimeout(customerTypingTimer);
        customerTypingTimer = setTimeout(() => { $("customer-typing").textContent = ""; }, CUSTOMER_TYPING_MS);
      }
      if (event.type === "message.received" && current && current.id === id) $("customer-typing").textContent = "";
      if (id && current && current.id === id && event.type !== "typing") show(id);
      if (event.type !== "typing") loadListSoon();
    },
  });
}

function applyLanguage() {
  applyTexts(t, lang);
  $("lang").value = lang;
  if (me) $("me").textContent = t("me", { name: me.name, role: me.role });
  if (stream) showLive(t, stream.live);
  if (current) renderConversation(current);
  showTemplateLanguages();
  renderList();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await api("", "POST", "/v1/auth/login", { email: $("email").value.trim(), password: $("password").value });
    $("password").value = "";
    await open(session.token);
  } catch (e) {
    $("login-error").textContent = e.status === 401 ? t("badLogin") : t("failed", { why: e.message });
  }
});

$("sign-out").addEventListener("click", async () => {
  try { await call("POST", "/v1/auth/logout"); } catch { /* the session ends here anyway */ }
  current = null;
  $("conversation").hidden = true;
  $("pick").hidden = false;
  showLogin();
});

for (const id of ["filter-state", "filter-team", "filter-assignee"]) $(id).addEventListener("change", loadList);
$("filter-channel").addEventListener("change", renderList);
$("take").addEventListener("click", () => act("POST", `/v1/conversations/${current.id}/assign`, { agent: "me" }));
$("to-queue").addEventListener("click", () => act("POST", `/v1/conversations/${current.id}/assign`, { agent: null }));
$("resolve").addEventListener("click", () => act("PATCH", `/v1/conversations/${current.id}`, { state: "resolved" }));

$("note-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("note").value.trim();
  if (!text || !current) return;
  try {
    await call("POST", `/v1/conversations/${current.id}/notes`, { text });
    $("note").value = "";
    await show(current.id);
  } catch (e) { failed(e, $("reply-result")); }
});

$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  const result = $("reply-result");
  const template = $("template").value;
  const canned = $("canned").value;
  const text = $("reply").value;
  let body;
  if (template) body = { content: { template, language: $("template-language").value.trim() || undefined } };
  else if (canned) body = { canned };
  else if (text.trim()) body = { content: { text } };
  else return;
  const button = event.submitter || $("reply-form").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await call("POST", `/v1/conversations/${current.id}/messages`, body);
    $("reply").value = "";
    $("template").value = "";
    showTemplateLanguages();
    $("canned").value = "";
    result.textContent = t("sentOk");
    result.className = "result ok";
    await show(current.id);
  } catch (e) {
    failed(e, result);
  } finally {
    button.disabled = false;
  }
});

$("template").addEventListener("change", showTemplateLanguages);

$("suggest").addEventListener("click", () => assist("/v1/nlu/suggest", (answer) => {
  const result = $("assist-result");
  if (answer.needs_human) {
    result.textContent = t("noSuggestion", { why: t(answer.handover_reason || "model_error") });
    result.className = "hint error";
    return;
  }
  $("reply").value = answer.text;
  $("reply").focus();
  result.textContent = t("suggested", { sources: answer.citations.join(", ") });
  result.className = "hint";
}));

$("summarize").addEventListener("click", () => assist("/v1/nlu/summarize", (answer) => {
  $("assist-result").textContent = "";
  $("summary").textContent = answer.summary;
  $("summary").hidden = false;
}));

$("reply").addEventListener("input", () => {
  // The customer's widget shows the agent typing; at most one report every 3 s.
  if (!current || Date.now() - typedAt < 3000) return;
  typedAt = Date.now();
  call("POST", `/v1/conversations/${current.id}/typing`).catch(() => {});
});

$("reply").addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter starts a new line.
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("reply-form").requestSubmit();
  }
});

$("lang").addEventListener("change", () => {
  lang = $("lang").value;
  rememberLanguage(lang);
  applyLanguage();
});

setInterval(() => { if (token && !document.hidden) loadList(); }, POLL_MS);
applyLanguage();
const saved = storedKey(TOKEN_ITEM);
if (saved) open(saved); else showLogin();
