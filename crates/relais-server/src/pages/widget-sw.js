// The Relais web chat's service worker: shows the Web Push notifications of replies and
// opens the page when one is clicked. A service worker must come from the site's own
// origin, so copy this file to your site's root, next to the pages that load widget.js:
//   curl -o public/widget-sw.js https://relais.example/widget-sw.js
// (or name another path with <script … data-service-worker="/path/sw.js">).
// A notification's JSON (docs/channels.md, Web Push): {"title", "body", "icon"?, "url"?,
// "actions": [{"action", "title", "url"?, "payload"?}], "relais"?: {"message", "token",
// "report"}}. With "relais" (the channel's public_url is set), the worker tells Relais
// that the notification was shown, clicked or dismissed, so that the message becomes
// delivered or read, and a reply button's click (an action with a "payload") comes back
// as the person's answer in their conversation. The report is text/plain so that the
// cross-origin call needs no preflight; its answer is not read.
const report = (relais, event, action, reply) => {
  if (!relais || !relais.report) return Promise.resolve();
  const body = JSON.stringify({
    message: relais.message, token: relais.token, event, action,
    title: reply ? reply.title : undefined, payload: reply ? reply.payload : undefined,
  });
  return fetch(relais.report, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body })
    .catch(() => {});
};

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : "" };
  }
  const actions = Array.isArray(data.actions) ? data.actions : [];
  const links = {};
  const replies = {};
  for (const action of actions) {
    if (action.url) links[action.action] = action.url;
    if (action.payload !== undefined) replies[action.action] = { title: action.title, payload: action.payload };
  }
  event.waitUntil(self.registration.showNotification(data.title || "", {
    body: data.body || "",
    icon: data.icon,
    actions: actions.map((action) => ({ action: action.action, title: action.title })),
    data: { url: data.url || null, links, replies, relais: data.relais || null },
  }).then(() => report(data.relais, "shown")));
});

self.addEventListener("notificationclose", (event) => {
  const data = event.notification.data || {};
  event.waitUntil(report(data.relais, "closed"));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  // The action's link, the notification's, or the site the visitor chatted on.
  const target = (event.action && data.links && data.links[event.action]) || data.url || self.registration.scope;
  const url = new URL(target, self.registration.scope).href;
  const reply = event.action && data.replies && data.replies[event.action];
  event.waitUntil((async () => {
    await report(data.relais, "clicked", event.action || undefined, reply);
    // An answer needs no page: the conversation goes on where the person is.
    if (reply) return undefined;
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((w) => w.url === url);
    if (open) return open.focus();
    return self.clients.openWindow(url);
  })());
});
