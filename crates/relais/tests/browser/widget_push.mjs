// The widget's "Get notified of replies" in a real browser, on a page of another site.
// A real push subscription needs the browser vendor's push service (unreachable here), so
// the page's navigator.serviceWorker, PushManager and Notification are stubs that record
// what the widget asks of them; everything else is real: the widget, its calls to
// Relais across origins, the contact's identity. Checked: no opt-in without a Web Push
// channel; with one, the control shows, the permission is asked only when the visitor
// clicks, the site's service worker is registered, the subscription is made with the
// channel's VAPID key and posted, and it becomes the visitor's webpush identity; "Stop
// notifications" removes it. Run by crates/relais/tests/browser.rs (PAGE_URL, SITE).

import { api, run, screenshot, step } from "./harness.mjs";

const page_url = process.env.PAGE_URL;
const site = process.env.SITE;
const VAPID_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const VAPID_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
const ENDPOINT = "https://push.example.net/send/visitor-1";

// Installed in the page before its scripts run.
function stubPush({ endpoint, p256dh, auth }) {
  const seen = { asked: 0, registered: [], subscribed: [], unsubscribed: 0 };
  window.__push = seen;
  let subscription = null;
  const pushManager = {
    getSubscription: async () => subscription,
    subscribe: async (options) => {
      seen.subscribed.push({ userVisibleOnly: options.userVisibleOnly, key: Array.from(options.applicationServerKey) });
      subscription = {
        endpoint,
        toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
        unsubscribe: async () => { seen.unsubscribed += 1; subscription = null; return true; },
      };
      return subscription;
    },
  };
  const registration = { pushManager, scope: `${location.origin}/` };
  Object.defineProperty(navigator, "serviceWorker", {
    configurable: true,
    value: {
      register: async (url) => { seen.registered.push(url); return registration; },
      ready: Promise.resolve(registration),
      getRegistration: async () => registration,
    },
  });
  window.PushManager = function PushManager() {};
  window.Notification = class Notification {
    static permission = "default";
    static async requestPermission() {
      seen.asked += 1;
      Notification.permission = "granted";
      return "granted";
    }
  };
}

const webpushContacts = async () => (await api("GET", "/v1/contacts")).data
  .filter((c) => c.identities.some((i) => i.channel === "webpush"));

await run(async (visitor) => {
  await visitor.addInitScript(stubPush, {
    endpoint: ENDPOINT,
    p256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    auth: "BTBZMqHH6r4Tts7J_aSIgg",
  });
  const widget = visitor.locator("[data-relais-widget]");
  const notify = widget.getByRole("button", { name: "Get notified of replies" });

  // No Web Push channel: the widget asks, is told there is none, and offers nothing.
  let keyAnswer = visitor.waitForResponse((r) => r.url().endsWith("/push"));
  await visitor.goto(page_url);
  const none = await (await keyAnswer).json();
  if (none.vapid_public_key !== null) throw new Error(`the key without a push channel: ${JSON.stringify(none)}`);
  await widget.getByRole("button", { name: "Open the chat" }).click();
  if (await notify.isVisible()) throw new Error("the opt-in shows without a Web Push channel");
  step("without a Web Push channel the widget offers no notifications");

  await api("POST", "/v1/channels", { kind: "webpush", name: "push", config: {
    vapid_private_key: VAPID_PRIVATE, vapid_subject: "mailto:ops@example.com" } });
  keyAnswer = visitor.waitForResponse((r) => r.url().endsWith("/push"));
  await visitor.reload();
  if ((await keyAnswer).status() !== 200) throw new Error(`the key: ${(await keyAnswer).status()}`);
  await widget.getByRole("button", { name: "Open the chat" }).click();
  await notify.waitFor({ timeout: 15000 });
  // The visitor's token comes with the socket's welcome.
  await visitor.waitForFunction(() => Object.keys(localStorage)
    .some((k) => k.startsWith("relais.webchat.") && JSON.parse(localStorage.getItem(k)).token));
  let seen = await visitor.evaluate(() => window.__push);
  if (seen.asked !== 0 || seen.registered.length || seen.subscribed.length) {
    throw new Error(`the widget asked before the click: ${JSON.stringify(seen)}`);
  }
  await screenshot(visitor, "widget-push.png");
  step("with a Web Push channel the control shows; nothing is asked before the visitor clicks");

  await notify.click();
  await widget.getByRole("button", { name: "Stop notifications" }).waitFor({ timeout: 15000 });
  await widget.getByText("You will be notified of replies.").waitFor();
  seen = await visitor.evaluate(() => window.__push);
  if (seen.asked !== 1) throw new Error(`permission asked ${seen.asked} times`);
  if (JSON.stringify(seen.registered) !== JSON.stringify([`${site}/widget-sw.js`])) {
    throw new Error(`registered: ${JSON.stringify(seen.registered)}`);
  }
  const sent = seen.subscribed[0];
  const key = Buffer.from(VAPID_PUBLIC, "base64url");
  if (seen.subscribed.length !== 1 || sent.userVisibleOnly !== true || Buffer.from(sent.key).compare(key) !== 0) {
    throw new Error(`subscribed: ${JSON.stringify(seen.subscribed)}`);
  }
  const subscribed = await webpushContacts();
  const identity = subscribed.length === 1 && subscribed[0].identities.find((i) => i.channel === "webpush");
  if (!identity || JSON.parse(identity.address).endpoint !== ENDPOINT
      || !subscribed[0].identities.some((i) => i.channel === "webchat")) {
    throw new Error(`the visitor's contact: ${JSON.stringify(subscribed)}`);
  }
  step("on click: permission asked once, the site's service worker registered, subscribed with the channel's key, posted; the visitor's contact has the webpush identity");

  await widget.getByRole("button", { name: "Stop notifications" }).click();
  await notify.waitFor({ timeout: 15000 });
  if ((await webpushContacts()).length !== 0) throw new Error("the subscription stayed after Stop notifications");
  if ((await visitor.evaluate(() => window.__push.unsubscribed)) !== 1) throw new Error("the browser's subscription was not ended");
  step("Stop notifications removes the identity and ends the browser's subscription");
});
