// What every page shares: the API key (kept for the browser tab only), the language, the
// calls to the REST API with their errors, and the sign-in form.

const KEY_ITEM = "relais.key";
const LANG_ITEM = "relais.lang";

export const $ = (id) => document.getElementById(id);

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// `item` names what is kept: an API key by default, an agent's session on the console.
export function storedKey(item = KEY_ITEM) {
  return sessionStorage.getItem(item);
}

export function storeKey(key, item = KEY_ITEM) {
  if (key) sessionStorage.setItem(item, key);
  else sessionStorage.removeItem(item);
}

export function preferredLanguage(texts) {
  const lang = localStorage.getItem(LANG_ITEM) || (navigator.language || "en").slice(0, 2);
  return texts[lang] ? lang : "en";
}

export function rememberLanguage(lang) {
  localStorage.setItem(LANG_ITEM, lang);
}

// A translator over `texts` ({en: {...}, fr: {...}}) for the language `lang()` gives.
export function translator(texts, lang) {
  return (name, values = {}) => {
    const text = texts[lang()][name] ?? texts.en[name] ?? name;
    return text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));
  };
}

// Sets every `[data-text]` element's text, the document's language and title.
export function applyTexts(t, lang) {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-text]")) el.textContent = t(el.dataset.text);
  document.title = t("title");
}

// Calls the REST API with `key`; a refusal becomes an ApiError carrying the problem's detail.
export async function api(key, method, path, body) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = null; }
  if (!response.ok) {
    const field = value?.errors?.[0];
    const detail = field ? `${field.pointer ?? ""} ${field.detail ?? ""}`.trim() : value?.detail || value?.title || response.statusText;
    throw new ApiError(response.status, detail);
  }
  return value;
}

// An image the API draws (an SVG chart), as a URL the page can show: an <img> cannot
// send the key itself.
export async function imageUrl(key, path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  return URL.createObjectURL(await response.blob());
}

// Fills the #sign-in section with the key form (texts signInTitle, signInHelp, apiKey,
// open), kept translated by applyTexts.
function buildSignIn(t) {
  const element = (tag, props = {}) => Object.assign(document.createElement(tag), props);
  const labelled = (el, name) => { el.dataset.text = name; el.textContent = t(name); return el; };
  const form = element("form", { id: "key-form" });
  const label = labelled(element("label", { htmlFor: "key" }), "apiKey");
  const input = element("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true });
  form.append(label, input, labelled(element("button", { type: "submit" }), "open"));
  $("sign-in").replaceChildren(
    labelled(element("h2"), "signInTitle"),
    labelled(element("p"), "signInHelp"),
    form,
    element("p", { id: "sign-in-error", className: "error" }),
  );
  $("sign-in-error").setAttribute("role", "alert");
}

// The tenant's (or the agent's) live events, reconnecting after a growing pause (1 s up
// to 10 s) while the server is away: `onEvent(event)` gets each frame, `onState(live)`
// hears of each connection and loss. `close()` ends it for good.
export function liveEvents(key, { onEvent, onState = () => {} }) {
  let socket = null;
  let delay = 1000;
  let closed = false;
  const connect = () => {
    if (closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/v1/events/stream?access_token=${encodeURIComponent(key)}`);
    socket.onopen = () => {
      delay = 1000;
      onState(true);
    };
    socket.onmessage = (frame) => {
      let event = null;
      try { event = JSON.parse(frame.data); } catch { return; }
      onEvent(event);
    };
    socket.onclose = () => {
      socket = null;
      if (closed) return;
      onState(false);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  connect();
  return {
    get live() { return socket !== null && socket.readyState === WebSocket.OPEN; },
    close() {
      closed = true;
      if (socket) socket.close();
    },
  };
}

// Shows in #live whether the page follows the event stream (texts live, reconnecting).
export function showLive(t, live) {
  $("live").textContent = live ? t("live") : t("reconnecting");
  $("live").className = live ? "live on" : "live";
}

// Wires the sign-in form and #sign-out: `check(key)` must succeed for a key to be kept;
// `opened(key)` then shows the page, `closed()` hides it.
export function signInForm({ t, check, opened, closed }) {
  buildSignIn(t);
  const show = (signedIn, message = "") => {
    $("sign-in").hidden = signedIn;
    $("sign-out").hidden = !signedIn;
    $("sign-in-error").textContent = message;
    if (!signedIn) {
      closed();
      $("key").focus();
    }
  };
  const tryKey = async (key) => {
    try {
      await check(key);
    } catch (e) {
      storeKey(null);
      show(false, e.status === 401 || e.status === 403 ? t("badKey") : t("failed", { why: e.message }));
      return;
    }
    storeKey(key);
    show(true);
    opened(key);
  };
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (key) tryKey(key);
  });
  $("sign-out").addEventListener("click", () => {
    storeKey(null);
    show(false);
  });
  const key = storedKey();
  if (key) tryKey(key); else show(false);
  return {
    refused() {
      storeKey(null);
      show(false, t("badKey"));
    },
  };
}
