// The Relais web chat widget. On any page of an allowed site:
//   <script src="https://relais.example/widget.js" data-channel="CHANNEL_ID" async></script>
// It opens a WebSocket to the channel, keeps the visitor's token in the browser (their
// history comes back after a reload), shows the conversation in a panel of its own (a
// shadow root: the page's styles do not leak in), and resends what the server has not
// confirmed after a lost connection; the server stores each message once. A visitor may
// attach an image: it is uploaded first, then sent as a message naming the upload.
// When the site's tenant has a Web Push channel, the visitor may ask to be notified of
// replies: the browser asks their permission only then, and the subscription is kept as
// their contact's webpush identity. Push needs a service worker from the site's own
// origin: copy https://relais.example/widget-sw.js to the site's root (or name another
// path with data-service-worker="/path/sw.js").
(() => {
  const script = document.currentScript;
  if (!script || !script.dataset.channel) {
    console.error("relais widget: the script tag needs data-channel=\"<channel id>\"");
    return;
  }
  const channel = script.dataset.channel;
  const base = new URL(script.src);
  const socketUrl = `${base.protocol === "https:" ? "wss" : "ws"}://${base.host}/webchat/${encodeURIComponent(channel)}/socket`;
  const storeKey = `relais.webchat.${channel}`;
  const workerUrl = new URL(script.dataset.serviceWorker || "/widget-sw.js", location.href).href;
  const serverUrl = `${base.protocol}//${base.host}/webchat/${encodeURIComponent(channel)}`;
  // What the server takes (docs/webchat.md): checked here first so the visitor is told
  // at once, in their words.
  const IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
  const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
  const WORDS = {
    en: { typing: "typing…", placeholder: "Write a message…", send: "Send", open: "Open the chat", close: "Close the chat", connecting: "Connecting…", offline: "Reconnecting…", failed: "Not sent: {why}",
      attach: "Attach an image", image: "Your image", badType: "Only JPEG, PNG, GIF or WebP images can be sent.",
      tooLarge: "This image is larger than 5 MB.", tooMany: "Too many images: try again in {s} s.", notYet: "Not connected yet: try again in a moment.",
      notify: "Get notified of replies", notifyStop: "Stop notifications", notifyOn: "You will be notified of replies.", notifyOff: "Notifications are off.",
      notifyBlocked: "Notifications are blocked for this site in your browser.", notifyFailed: "Notifications could not be turned on: {why}" },
    fr: { typing: "en train d'écrire…", placeholder: "Écrivez un message…", send: "Envoyer", open: "Ouvrir la discussion", close: "Fermer la discussion", connecting: "Connexion…", offline: "Reconnexion…", failed: "Non envoyé : {why}",
      attach: "Joindre une image", image: "Votre image", badType: "Seules les images JPEG, PNG, GIF ou WebP peuvent être envoyées.",
      tooLarge: "Cette image dépasse 5 Mo.", tooMany: "Trop d'images : réessayez dans {s} s.", notYet: "Pas encore connecté : réessayez dans un instant.",
      notify: "Être prévenu des réponses", notifyStop: "Ne plus être prévenu", notifyOn: "Vous serez prévenu des réponses.", notifyOff: "Notifications désactivées.",
      notifyBlocked: "Les notifications de ce site sont bloquées par votre navigateur.", notifyFailed: "Les notifications n'ont pas pu être activées : {why}" },
  };

  const saved = (() => { try { return JSON.parse(localStorage.getItem(storeKey)) || {}; } catch { return {}; } })();
  const state = {
    token: saved.token || null,
    outbox: Array.isArray(saved.outbox) ? saved.outbox : [], // sent, not confirmed yet
    lastId: null,
    seen: new Set(), // message ids shown
    readSent: new Set(),
    look: { title: "Chat", color: "#2257d6", greeting: null, language: "en" },
    socket: null,
    delay: 1000,
    open: false,
    typedAt: 0,
    push: saved.push === true, // this browser's subscription is kept by the server
    pushKey: null, // the VAPID public key, when the tenant has a Web Push channel
  };
  const words = () => WORDS[state.look.language] || WORDS.en;
  const persist = () => localStorage.setItem(storeKey, JSON.stringify({ token: state.token, outbox: state.outbox, push: state.push }));

  // The panel, in a shadow root.
  const host = document.createElement("div");
  host.setAttribute("data-relais-widget", channel);
  const root = host.attachShadow({ mode: "open" });
  // A constructed style sheet: a page whose Content-Security-Policy refuses inline
  // <style> elements still styles the widget.
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(`
    :host { all: initial; }
    * { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
    .launcher { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; border: 0;
      color: #fff; cursor: pointer; display: grid; place-items: center; box-shadow: 0 4px 14px rgba(0,0,0,.25); z-index: 2147483000; }
    .panel { position: fixed; right: 20px; bottom: 88px; width: min(370px, calc(100vw - 24px)); height: min(540px, calc(100vh - 110px));
      background: #fff; border-radius: 14px; box-shadow: 0 8px 30px rgba(0,0,0,.25); display: flex; flex-direction: column;
      overflow: hidden; z-index: 2147483000; color: #1d2330; }
    .panel[hidden] { display: none; }
    header { color: #fff; padding: 12px 14px; font-weight: 600; display: flex; justify-content: space-between; align-items: center; }
    header small { font-weight: 400; opacity: .85; }
    .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; background: #f5f7fb; }
    .log > * { flex-shrink: 0; }
    .msg { max-width: 85%; padding: 8px 11px; border-radius: 14px; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 14px; line-height: 1.35; }
    .out { align-self: flex-start; background: #fff; border: 1px solid #d9dee8; border-bottom-left-radius: 4px; }
    .in { align-self: flex-end; color: #fff; border-bottom-right-radius: 4px; }
    .pending { opacity: .6; }
    .error { color: #b3261e; font-size: 12px; align-self: flex-end; }
    .buttons, .replies { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
    .replies { align-self: flex-start; }
    button.choice, a.choice { font-size: 13px; border-radius: 999px; padding: 5px 11px; background: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
    .card { border: 1px solid #d9dee8; border-radius: 10px; background: #fff; overflow: hidden; min-width: 200px; max-width: 240px; }
    .card img, .msg img { width: 100%; display: block; }
    .card .body { padding: 8px 10px; }
    .card .title { font-weight: 600; }
    .carousel { display: flex; gap: 8px; overflow-x: auto; max-width: 100%; align-self: stretch; padding-bottom: 4px; }
    form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #d9dee8; }
    input { flex: 1; border: 1px solid #d9dee8; border-radius: 8px; padding: 9px 10px; font-size: 14px; }
    form button { border: 0; border-radius: 8px; color: #fff; padding: 0 14px; font-size: 14px; cursor: pointer; }
    form button.attach { background: none; color: inherit; padding: 0 6px; font-size: 18px; line-height: 1; }
    form button.attach:hover, form button.attach:focus-visible { background: #eef1f6; }
    .msg img { border-radius: 10px; min-width: 48px; max-height: 220px; object-fit: contain; }
    button.notify { align-self: flex-start; margin: 0 12px 6px; font-size: 12px; border-radius: 999px; padding: 4px 10px; background: #fff; cursor: pointer; }
    button.notify[hidden] { display: none; }
    .status { font-size: 12px; color: #5d6678; padding: 0 12px 6px; min-height: 1em; }
    .typing { font-size: 12px; color: #5d6678; padding: 0 12px; min-height: 1em; font-style: italic; }
    form.fill { display: grid; gap: 6px; padding: 10px; border: 0; }
    .fill label { display: grid; gap: 3px; font-size: 13px; color: #5d6678; }
    .fill input, .fill select { font-size: 14px; border: 1px solid #d9dee8; border-radius: 8px; padding: 7px 9px; background: #fff; color: #1d2330; }
    .fill button { padding: 8px 14px; justify-self: start; }
    .fill fieldset { border: 0; margin: 0; padding: 0; display: grid; gap: 6px; min-width: 0; }
`);
  root.adoptedStyleSheets = [sheet];
  root.innerHTML = `  <button class="launcher" type="button" aria-expanded="false"><svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg></button>
  <section class="panel" hidden role="dialog">
    <header><span class="title"></span><small class="greeting"></small></header>
    <div class="log" role="log" aria-live="polite"></div>
    <div class="typing" aria-live="polite"></div>
    <button type="button" class="notify" hidden></button>
    <div class="status" role="status"></div>
    <form><button type="button" class="attach">📎</button><input name="text" autocomplete="off" maxlength="4096"><button type="submit" class="send"></button><input type="file" class="file" hidden accept="image/jpeg,image/png,image/gif,image/webp"></form>
  </section>`;
  const $ = (selector) => root.querySelector(selector);
  const log = $(".log");

  function applyLook() {
    const look = state.look;
    $(".launcher").style.background = look.color;
    $("header").style.background = look.color;
    $(".panel > form button.send").style.background = look.color;
    $(".title").textContent = look.title;
    $(".greeting").textContent = "";
    $(".panel > form input[name=text]").placeholder = words().placeholder;
    $(".panel > form input[name=text]").setAttribute("aria-label", words().placeholder);
    $(".panel > form button.send").textContent = words().send;
    $(".launcher").setAttribute("aria-label", state.open ? words().close : words().open);
    $(".attach").setAttribute("aria-label", words().attach);
    $(".attach").title = words().attach;
    $(".notify").textContent = state.push ? words().notifyStop : words().notify;
    $(".notify").style.border = `1px solid ${look.color}`;
    $(".notify").style.color = look.color;
    $(".panel").setAttribute("aria-label", look.title);
    for (const el of root.querySelectorAll(".in")) el.style.background = look.color;
    const greeting = root.querySelector(".greeting-msg");
    if (look.greeting && !greeting) {
      const el = document.createElement("div");
      el.className = "msg out greeting-msg";
      el.textContent = look.greeting;
      log.prepend(el);
    }
  }

  const safeUrl = (url) => { try { const u = new URL(url); return ["http:", "https:"].includes(u.protocol) ? u.href : null; } catch { return null; } };

  function buttonElement(button) {
    if (button.type === "url" && safeUrl(button.url)) {
      const a = document.createElement("a");
      a.className = "choice";
      a.href = safeUrl(button.url);
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = button.title;
      a.style.border = `1px solid ${state.look.color}`;
      a.style.color = state.look.color;
      return a;
    }
    if (button.type === "call") {
      const a = document.createElement("a");
      a.className = "choice";
      a.href = `tel:${String(button.phone).replace(/[^+0-9]/g, "")}`;
      a.textContent = button.title;
      return a;
    }
    const b = document.createElement("button");
    b.type = "button";
    b.className = "choice";
    b.textContent = button.title;
    b.style.border = `1px solid ${state.look.color}`;
    b.style.color = state.look.color;
    b.addEventListener("click", () => send(button.title, button.payload || null));
    return b;
  }

  function cardElement(card) {
    const el = document.createElement("div");
    el.className = "card";
    const image = card.media && safeUrl(card.media.url);
    if (image && String(card.media.mime_type || "").startsWith("image/")) {
      const img = document.createElement("img");
      img.src = image;
      img.alt = card.title || "";
      el.append(img);
    }
    const body = document.createElement("div");
    body.className = "body";
    if (card.title) { const t = document.createElement("div"); t.className = "title"; t.textContent = card.title; body.append(t); }
    if (card.text) { const s = document.createElement("div"); s.textContent = card.text; body.append(s); }
    if (Array.isArray(card.buttons) && card.buttons.length) {
      const row = document.createElement("div");
      row.className = "buttons";
      row.append(...card.buttons.map(buttonElement));
      body.append(row);
    }
    el.append(body);
    return el;
  }

  const INPUT_TYPES = { text: "text", email: "email", phone: "tel", number: "number", date: "date", time: "time" };

  // A form to fill in: its values go back as one message, the lines as text (what an
  // agent reads) and the values by field name as the payload (what a flow reads).
  function formElement(form) {
    const el = document.createElement("div");
    el.className = "card out";
    const body = document.createElement("div");
    body.className = "body";
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = form.title;
    body.append(title);
    if (form.text) { const p = document.createElement("div"); p.textContent = form.text; body.append(p); }
    el.append(body);
    const fill = document.createElement("form");
    fill.className = "fill";
    const fieldset = document.createElement("fieldset");
    const controls = [];
    for (const field of form.fields || []) {
      const label = document.createElement("label");
      label.append(document.createTextNode(field.label));
      let control;
      if (field.kind === "choice") {
        control = document.createElement("select");
        control.append(new Option("—", ""));
        for (const option of field.options || []) control.append(new Option(option, option));
      } else {
        control = document.createElement("input");
        control.type = INPUT_TYPES[field.kind] || "text";
        control.maxLength = 300;
      }
      control.name = field.name;
      control.required = field.required !== false;
      label.append(control);
      fieldset.append(label);
      controls.push([field, control]);
    }
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = form.submit || words().send;
    submit.style.background = state.look.color;
    fieldset.append(submit);
    fill.append(fieldset);
    fill.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = {};
      const lines = [];
      for (const [field, control] of controls) {
        const value = control.value.trim();
        if (!value) continue;
        values[field.name] = value;
        lines.push(`${field.label}: ${value}`);
      }
      if (!lines.length) return;
      send(lines.join("\n"), JSON.stringify(values));
      fieldset.disabled = true;
    });
    el.append(fill);
    return el;
  }

  // The visitor's own images, by upload id: an object URL of the file they picked, or of
  // the upload fetched back with their token (after a reload).
  const imageUrls = new Map();

  function ownImage(id) {
    const img = document.createElement("img");
    img.alt = words().image;
    if (!imageUrls.has(id)) {
      imageUrls.set(id, fetch(`${serverUrl}/media/${encodeURIComponent(id)}`, { headers: { "X-Relais-Visitor": state.token || "" } })
        .then((r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); return r.blob(); })
        .then((blob) => URL.createObjectURL(blob)));
    }
    imageUrls.get(id).then((url) => { img.src = url; }, (e) => { imageUrls.delete(id); console.warn("relais widget: image", e); });
    return img;
  }

  function note(text) {
    const el = document.createElement("div");
    el.className = "error";
    el.textContent = text;
    log.append(el);
    log.scrollTop = log.scrollHeight;
  }

  function render(frame) {
    const content = frame.content || {};
    const incoming = frame.direction === "in";
    if (incoming && frame.client_id) {
      const pending = root.querySelector(`[data-client-id="${CSS.escape(frame.client_id)}"]`);
      if (pending) { pending.dataset.id = frame.id; pending.classList.remove("pending"); return; }
    }
    let el;
    if (content.carousel) {
      el = document.createElement("div");
      el.className = "carousel";
      el.append(...content.carousel.map(cardElement));
    } else if (content.card) {
      el = cardElement(content.card);
      el.classList.add("out");
    } else if (content.form) {
      el = formElement(content.form);
    } else {
      el = document.createElement("div");
      el.className = `msg ${incoming ? "in" : "out"}`;
      if (incoming) el.style.background = state.look.color;
      const media = content.media && safeUrl(content.media.url);
      if (incoming && content.media && content.media.id) {
        el.append(ownImage(content.media.id));
      } else if (media && String(content.media.mime_type || "").startsWith("image/")) {
        const img = document.createElement("img");
        img.src = media;
        img.alt = content.media.caption || "";
        el.append(img);
      }
      const place = content.location
        ? [content.location.name, content.location.address, `(${content.location.lat}, ${content.location.lon})`].filter(Boolean).join(" ")
        : null;
      const text = content.text ?? content.media?.caption ?? place ?? (content.template ? `[${content.template}]` : "");
      el.append(document.createTextNode(text));
      if (Array.isArray(content.buttons) && content.buttons.length) {
        const row = document.createElement("div");
        row.className = "buttons";
        row.append(...content.buttons.map(buttonElement));
        el.append(row);
      }
    }
    el.dataset.id = frame.id;
    log.append(el);
    for (const old of root.querySelectorAll(".replies")) old.remove();
    if (!incoming && Array.isArray(content.quick_replies) && content.quick_replies.length) {
      const row = document.createElement("div");
      row.className = "replies";
      row.append(...content.quick_replies.map((q) => buttonElement({ type: "reply", title: q.title, payload: q.payload })));
      log.append(row);
    }
    log.scrollTop = log.scrollHeight;
  }

  function markRead() {
    if (!state.open || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    for (const el of root.querySelectorAll(".out[data-id]")) {
      const id = el.dataset.id;
      if (id && !state.readSent.has(id)) {
        state.readSent.add(id);
        state.socket.send(JSON.stringify({ type: "read", id }));
      }
    }
  }

  function onFrame(frame) {
    if (frame.type === "welcome") {
      state.token = frame.visitor;
      if (frame.look) { state.look = frame.look; applyLook(); }
      persist();
      $(".status").textContent = "";
      // What was not confirmed before the connection dropped goes again; the server
      // stores each client id once.
      for (const m of state.outbox) state.socket.send(JSON.stringify({ type: "message", client_id: m.client_id, text: m.text, payload: m.payload, media: m.media }));
    } else if (frame.type === "message") {
      if (state.seen.has(frame.id)) return;
      if (frame.direction === "out") { clearTimeout(state.typingTimer); $(".typing").textContent = ""; }
      state.seen.add(frame.id);
      state.lastId = frame.id;
      render(frame);
      markRead();
    } else if (frame.type === "typing") {
      // Shown for a few seconds; an agent who keeps typing sends it again.
      $(".typing").textContent = words().typing;
      clearTimeout(state.typingTimer);
      state.typingTimer = setTimeout(() => { $(".typing").textContent = ""; }, 4000);
    } else if (frame.type === "ack") {
      state.outbox = state.outbox.filter((m) => m.client_id !== frame.client_id);
      persist();
      const el = root.querySelector(`[data-client-id="${CSS.escape(frame.client_id)}"]`);
      if (el) el.classList.remove("pending");
    } else if (frame.type === "error" && frame.client_id && frame.retry === true) {
      // Not stored yet, or too fast: the same message again in a moment.
      setTimeout(() => {
        const message = state.outbox.find((m) => m.client_id === frame.client_id);
        if (message && state.socket && state.socket.readyState === WebSocket.OPEN) {
          state.socket.send(JSON.stringify({ type: "message", ...message }));
        }
      }, 2000);
    } else if (frame.type === "error" && frame.client_id && frame.retry === false) {
      state.outbox = state.outbox.filter((m) => m.client_id !== frame.client_id);
      persist();
      note(words().failed.replace("{why}", frame.detail || ""));
    }
  }

  function connect() {
    $(".status").textContent = state.lastId ? words().offline : words().connecting;
    const socket = new WebSocket(socketUrl);
    state.socket = socket;
    socket.onopen = () => {
      state.delay = 1000;
      socket.send(JSON.stringify({ type: "hello", visitor: state.token, after: state.lastId }));
    };
    socket.onmessage = (event) => { try { onFrame(JSON.parse(event.data)); } catch (e) { console.warn("relais widget:", e); } };
    socket.onclose = () => {
      state.socket = null;
      $(".status").textContent = words().offline;
      setTimeout(connect, state.delay);
      state.delay = Math.min(state.delay * 2, 10000);
    };
  }

  function newClientId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // A message shown before the server confirms it.
  function pendingElement(message) {
    const el = document.createElement("div");
    el.className = "msg in pending";
    el.style.background = state.look.color;
    el.dataset.clientId = message.client_id;
    if (message.media) el.append(ownImage(message.media));
    if (message.text) el.append(document.createTextNode(message.text));
    return el;
  }

  function send(text, payload, media) {
    text = text.trim();
    if (!text && !media) return;
    const message = { client_id: newClientId(), text, payload };
    if (media) message.media = media;
    state.outbox.push(message);
    persist();
    log.append(pendingElement(message));
    for (const old of root.querySelectorAll(".replies")) old.remove();
    log.scrollTop = log.scrollHeight;
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify({ type: "message", ...message }));
    }
  }

  // An image: checked here, uploaded, then sent as a message naming the upload (kept in
  // the outbox like a text, so a reconnection sends it again).
  async function attach(file) {
    if (!IMAGE_TYPES.includes(file.type)) return note(words().badType);
    if (file.size > MAX_IMAGE_BYTES) return note(words().tooLarge);
    if (!state.token) return note(words().notYet);
    let response;
    try {
      response = await fetch(`${serverUrl}/uploads`, {
        method: "POST", headers: { "Content-Type": file.type, "X-Relais-Visitor": state.token }, body: file,
      });
    } catch (e) {
      return note(words().failed.replace("{why}", String(e.message || e)));
    }
    const answer = await response.json().catch(() => ({}));
    if (response.status === 429) return note(words().tooMany.replace("{s}", response.headers.get("Retry-After") || "60"));
    if (response.status === 415) return note(words().badType);
    if (response.status === 413) return note(words().tooLarge);
    if (!response.ok || !answer.id) return note(words().failed.replace("{why}", answer.detail || response.statusText));
    // Shown from the file itself: nothing to fetch back.
    imageUrls.set(answer.id, Promise.resolve(URL.createObjectURL(file)));
    send("", null, answer.id);
  }

  // Push notifications of replies, offered when the tenant has a Web Push channel and the
  // browser can push; the permission is asked when the visitor clicks, never before.
  const canPush = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  async function offerPush() {
    if (!canPush()) return;
    try {
      const response = await fetch(`${serverUrl}/push`);
      if (!response.ok) return;
      state.pushKey = (await response.json()).vapid_public_key;
    } catch (e) {
      return console.warn("relais widget: push", e);
    }
    if (!state.pushKey) return;
    $(".notify").hidden = false;
    applyLook();
  }

  // The key as pushManager.subscribe takes it: base64url to bytes.
  function keyBytes(key) {
    const base64 = key.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(key.length / 4) * 4, "=");
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  }

  async function pushCall(method, body) {
    const response = await fetch(`${serverUrl}/push`, {
      method, headers: { "Content-Type": "application/json", "X-Relais-Visitor": state.token }, body: JSON.stringify(body),
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      throw new Error(answer.detail || response.statusText);
    }
  }

  async function subscribePush() {
    if (!state.token) return note(words().notYet);
    const permission = await Notification.requestPermission();
    if (permission !== "granted") return note(words().notifyBlocked);
    try {
      await navigator.serviceWorker.register(workerUrl);
      const registration = await navigator.serviceWorker.ready;
      const subscription = (await registration.pushManager.getSubscription())
        || await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(state.pushKey) });
      await pushCall("POST", subscription.toJSON());
    } catch (e) {
      return note(words().notifyFailed.replace("{why}", String(e.message || e)));
    }
    pushTurned(true);
  }

  async function unsubscribePush() {
    try {
      const registration = await navigator.serviceWorker.getRegistration(workerUrl);
      const subscription = registration && await registration.pushManager.getSubscription();
      if (subscription) {
        await pushCall("DELETE", { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
      }
    } catch (e) {
      return note(words().failed.replace("{why}", String(e.message || e)));
    }
    pushTurned(false);
  }

  // Remembered across reloads; the button and the status line say it.
  function pushTurned(on) {
    state.push = on;
    persist();
    applyLook();
    $(".status").textContent = on ? words().notifyOn : words().notifyOff;
  }

  $(".notify").addEventListener("click", () => (state.push ? unsubscribePush() : subscribePush()));

  $(".attach").addEventListener("click", () => $(".file").click());
  $(".file").addEventListener("change", () => {
    const file = $(".file").files[0];
    $(".file").value = "";
    if (file) attach(file);
  });

  $(".panel > form").addEventListener("submit", (event) => {
    event.preventDefault();
    send($(".panel > form input[name=text]").value, null);
    $(".panel > form input[name=text]").value = "";
  });
  $(".panel > form input[name=text]").addEventListener("input", () => {
    // The agent sees "typing…"; the server passes on at most one report every 2 s.
    if (!$(".panel > form input[name=text]").value.trim() || Date.now() - state.typedAt < 2500) return;
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.typedAt = Date.now();
      state.socket.send(JSON.stringify({ type: "typing" }));
    }
  });
  $(".launcher").addEventListener("click", () => {
    state.open = !state.open;
    $(".panel").hidden = !state.open;
    $(".launcher").setAttribute("aria-expanded", String(state.open));
    applyLook();
    if (state.open) { $(".panel > form input[name=text]").focus(); markRead(); }
  });

  const start = () => {
    document.body.append(host);
    applyLook();
    // Messages not confirmed before a reload show as pending until the server has them.
    for (const m of state.outbox) log.append(pendingElement(m));
    connect();
    offerPush();
    // A click-to-chat link (docs/links.md) names the first message in `relais_text`: the
    // panel opens with it typed in, for the visitor to send as it is or to change.
    const prefilled = new URLSearchParams(location.search).get("relais_text");
    if (prefilled) {
      state.open = true;
      $(".panel").hidden = false;
      $(".launcher").setAttribute("aria-expanded", "true");
      $(".panel > form input[name=text]").value = prefilled.slice(0, 4096);
      applyLook();
    }
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
