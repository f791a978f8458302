// The Relais web chat's service worker: shows the Web Push notifications of replies and
// opens the page when one is clicked. A service worker must come from the site's own
// origin, so copy this file to your site's root, next to the pages that load widget.js:
//   curl -o public/widget-sw.js https://relais.example/widget-sw.js
// (or name another path with <script … data-service-worker="/path/sw.js">).
// A notification's JSON (docs/channels.md, Web Push): {"title", "body", "icon"?, "url"?,
// "actions": [{"action", "title", "url"}]}.
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : "" };
  }
  const actions = Array.isArray(data.actions) ? data.actions : [];
  const links = {};
  for (const action of actions) links[action.action] = action.url;
  event.waitUntil(self.registration.showNotification(data.title || "", {
    body: data.body || "",
    icon: data.icon,
    actions: actions.map((action) => ({ action: action.action, title: action.title })),
    data: { url: data.url || null, links },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  // The action's link, the notification's, or the site the visitor chatted on.
  const target = (event.action && data.links && data.links[event.action]) || data.url || self.registration.scope;
  const url = new URL(target, self.registration.scope).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((w) => w.url === url);
    if (open) return open.focus();
    return self.clients.openWindow(url);
  })());
});
