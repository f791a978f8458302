// The dashboard: the figures of GET /v1/analytics and the charts the server draws
// (/v1/analytics/volume.svg, /v1/analytics/funnel.svg), for the last 24 hours, 7 or 30
// days, and a campaign's report with its funnel (/v1/campaigns/{id}/funnel.svg), refreshed every 10 seconds while the tab is shown, when a customer writes or a
// conversation changes (the event stream), and on demand.

import {
  $, api, applyTexts, imageUrl, liveEvents, preferredLanguage, rememberLanguage, signInForm, translator,
} from "/assets/session.js";

const TEXTS = {
  en: {
    title: "Relais dashboard", language: "Language", periodLabel: "Period", signOut: "Sign out", refresh: "Refresh",
    day: "Last 24 hours", week: "Last 7 days", month: "Last 30 days",
    signInTitle: "Open the dashboard",
    signInHelp: "Paste an API key of your tenant. The first start of the server wrote one to relais-data/admin-api-key.",
    apiKey: "API key", open: "Open", badKey: "This key was refused.", failed: "Failed: {why}",
    volumeTitle: "Messages sent, by channel, and received", funnelTitle: "Delivery funnel",
    sendsTitle: "Campaigns' sends",
    noSends: "No campaign sent in this period (a send request names its campaign with \"campaign\").",
    campaign: "Campaign", progress: "Progress", accepted: "Accepted", delivered: "Delivered",
    read: "Read", failedCol: "Failed", updated: "Updated",
    sent: "Messages sent", deliveredRate: "Delivered", readRate: "Read (of delivered)",
    responseRate: "Wrote back", inbound: "Messages received", firstResponse: "First response (mean)",
    breaches: "SLA breaches", pending: "Waiting to go", none: "—",
    campaignsTitle: "Campaigns", campaignLabel: "Campaign", campaignFunnel: "Campaign funnel",
    noCampaigns: "No campaign yet: create one with POST /v1/campaigns (see docs/campaigns.md).",
    variant: "Variant", channel: "Channel", clicked: "Clicked", replied: "Replied", converted: "Converted",
    value: "Value", cost: "Cost",
    summary: "{state} · {enqueued} of {recipients} recipients sent · {skipped} skipped",
    winner: "winner: {winner}", skippedFor: "{reason}: {count}",
    state_draft: "draft", state_running: "running", state_paused: "paused", state_completed: "completed",
    state_canceled: "canceled",
  },
  fr: {
    title: "Tableau de bord Relais", language: "Langue", periodLabel: "Période", signOut: "Se déconnecter", refresh: "Actualiser",
    day: "Dernières 24 heures", week: "7 derniers jours", month: "30 derniers jours",
    signInTitle: "Ouvrir le tableau de bord",
    signInHelp: "Collez une clé d'API de votre tenant. Le premier démarrage du serveur en a écrit une dans relais-data/admin-api-key.",
    apiKey: "Clé d'API", open: "Ouvrir", badKey: "Cette clé a été refusée.", failed: "Échec : {why}",
    volumeTitle: "Messages envoyés, par canal, et reçus", funnelTitle: "Entonnoir de remise",
    sendsTitle: "Envois des campagnes",
    noSends: "Aucune campagne n'a envoyé sur cette période (une demande d'envoi nomme sa campagne avec « campaign »).",
    campaign: "Campagne", progress: "Avancement", accepted: "Acceptés", delivered: "Remis",
    read: "Lus", failedCol: "En échec", updated: "Mis à jour",
    sent: "Messages envoyés", deliveredRate: "Remis", readRate: "Lus (parmi les remis)",
    responseRate: "Ont répondu", inbound: "Messages reçus", firstResponse: "Première réponse (moyenne)",
    breaches: "SLA dépassés", pending: "En attente d'envoi", none: "—",
    campaignsTitle: "Campagnes", campaignLabel: "Campagne", campaignFunnel: "Entonnoir de la campagne",
    noCampaigns: "Aucune campagne pour l'instant : créez-en une avec POST /v1/campaigns (voir docs/campaigns.md).",
    variant: "Variante", channel: "Canal", clicked: "Cliqués", replied: "Réponses", converted: "Convertis",
    value: "Valeur", cost: "Coût",
    summary: "{state} · {enqueued} destinataires sur {recipients} envoyés · {skipped} écartés",
    winner: "gagnante : {winner}", skippedFor: "{reason} : {count}",
    state_draft: "brouillon", state_running: "en cours", state_paused: "en pause", state_completed: "terminée",
    state_canceled: "annulée",
  },
};

const REFRESH_MS = 10000;
// Events (a status, a message received) ask for a refresh at most this often.
const EVENT_REFRESH_MS = 2000;

let lang = preferredLanguage(TEXTS);
const t = translator(TEXTS, () => lang);
let key = null;
let stream = null;
let eventTimer = null;
let shownUrls = [];
let loading = null;

function percent(rate) {
  return rate === null || rate === undefined ? t("none") : `${Math.round(rate * 100)} %`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("none");
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function figure(label, value, name) {
  const box = document.createElement("div");
  box.className = "figure";
  box.dataset.figure = name;
  const v = document.createElement("div");
  v.className = "value";
  v.textContent = value;
  const l = document.createElement("div");
  l.className = "label";
  l.textContent = label;
  box.append(v, l);
  return box;
}

function renderFigures(d) {
  const f = d.totals.funnel;
  const number = (n) => n.toLocaleString(lang);
  $("figures").replaceChildren(
    figure(t("sent"), number(f.accepted), "accepted"),
    figure(t("deliveredRate"), percent(f.accepted ? f.delivered / f.accepted : null), "delivered"),
    figure(t("readRate"), percent(d.totals.read_rate), "read"),
    figure(t("responseRate"), percent(d.totals.response_rate), "response"),
    figure(t("inbound"), number(d.totals.inbound), "inbound"),
    figure(t("firstResponse"), duration(d.desk.mean_first_response_seconds), "first_response"),
    figure(t("breaches"), number(d.desk.sla_breaches), "breaches"),
    figure(t("pending"), number(f.pending), "pending"),
  );
}

function renderSends(d) {
  const rows = d.sends.map((s) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = s.campaign;
    const progress = document.createElement("td");
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = s.done;
    bar.setAttribute("aria-label", `${s.campaign}: ${percent(s.done)}`);
    progress.append(bar, ` ${percent(s.done)}`);
    const cells = [s.funnel.accepted, s.funnel.delivered, s.funnel.read, s.funnel.failed].map((n) => {
      const td = document.createElement("td");
      td.className = "number";
      td.textContent = n.toLocaleString(lang);
      return td;
    });
    tr.append(name, progress, ...cells);
    return tr;
  });
  $("sends").querySelector("tbody").replaceChildren(...rows);
  $("sends").hidden = rows.length === 0;
  $("no-sends").hidden = rows.length > 0;
}

// The campaign the page shows (kept across refreshes), and its chart's object URL.
let campaignUrl = null;

function cell(text, number = false) {
  const td = document.createElement("td");
  if (number) td.className = "number";
  td.textContent = text;
  return td;
}

async function loadCampaigns() {
  const { data } = await api(key, "GET", "/v1/campaigns");
  const select = $("campaign");
  const chosen = select.value;
  // Running ones first, then the latest created.
  const order = { running: 0, paused: 1, draft: 2, completed: 3, canceled: 4 };
  data.sort((a, b) => (order[a.state] - order[b.state]) || b.created_at.localeCompare(a.created_at));
  select.replaceChildren(...data.map((c) => Object.assign(document.createElement("option"), {
    value: c.id, textContent: `${c.name} (${t(`state_${c.state}`)})`,
  })));
  $("no-campaigns").hidden = data.length > 0;
  $("campaign-view").hidden = data.length === 0;
  if (data.length === 0) return;
  if (data.some((c) => c.id === chosen)) select.value = chosen;
  const id = select.value;
  const query = `lang=${encodeURIComponent(lang)}`;
  const [report, chart] = await Promise.all([
    api(key, "GET", `/v1/campaigns/${encodeURIComponent(id)}/report`),
    imageUrl(key, `/v1/campaigns/${encodeURIComponent(id)}/funnel.svg?${query}`),
  ]);
  const p = report.progress;
  const parts = [t("summary", {
    state: t(`state_${report.state}`), enqueued: p.enqueued.toLocaleString(lang),
    recipients: p.recipients.toLocaleString(lang), skipped: p.skipped.toLocaleString(lang),
  })];
  if (report.winner) parts.push(t("winner", { winner: report.winner }));
  for (const [reason, count] of Object.entries(p.skipped_by_reason)) {
    parts.push(t("skippedFor", { reason, count: count.toLocaleString(lang) }));
  }
  $("campaign-summary").textContent = parts.join(" · ");
  $("campaign-funnel").src = chart;
  $("campaign-funnel").alt = t("campaignFunnel");
  if (campaignUrl) URL.revokeObjectURL(campaignUrl);
  campaignUrl = chart;
  const number = (n) => n.toLocaleString(lang);
  const money = (cost) => Object.entries(cost)
    .map(([currency, amount]) => amount.toLocaleString(lang, { style: "currency", currency }))
    .join(" + ") || t("none");
  $("campaign-table").querySelector("tbody").replaceChildren(...report.funnel.map((row) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(row.variant ?? report.name), cell(row.channel),
      ...[row.accepted, row.delivered, row.read, row.clicked, row.replied, row.converted]
        .map((n) => cell(number(n), true)),
      cell(number(row.conversion_value), true), cell(money(row.cost), true),
    );
    return tr;
  }));
}

async function load() {
  if (!key) return;
  if (loading) return loading;
  loading = (async () => {
    const period = $("period").value;
    const query = `period=${encodeURIComponent(period)}&lang=${encodeURIComponent(lang)}`;
    try {
      const [d, volume, funnel] = await Promise.all([
        api(key, "GET", `/v1/analytics?${query}`),
        imageUrl(key, `/v1/analytics/volume.svg?${query}`),
        imageUrl(key, `/v1/analytics/funnel.svg?${query}`),
      ]);
      renderFigures(d);
      renderSends(d);
      await loadCampaigns();
      $("volume").src = volume;
      $("volume").alt = t("volumeTitle");
      $("funnel").src = funnel;
      $("funnel").alt = t("funnelTitle");
      for (const url of shownUrls) URL.revokeObjectURL(url);
      shownUrls = [volume, funnel];
      const now = new Date();
      $("updated").dateTime = now.toISOString();
      $("updated").textContent = now.toLocaleTimeString(lang);
    } catch (e) {
      if (e.status === 401) session.refused();
      else console.warn("dashboard refresh failed:", e.message);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

function connect() {
  stream = liveEvents(key, {
    onEvent() {
      if (eventTimer) return;
      eventTimer = setTimeout(() => { eventTimer = null; load(); }, EVENT_REFRESH_MS);
    },
  });
}

function applyLanguage() {
  applyTexts(t, lang);
  $("lang").value = lang;
}

$("lang").addEventListener("change", () => {
  lang = $("lang").value;
  rememberLanguage(lang);
  applyLanguage();
  load();
});
$("period").addEventListener("change", load);
$("campaign").addEventListener("change", () => loadCampaigns().catch((e) => console.warn("campaign failed:", e.message)));
$("refresh").addEventListener("click", load);
setInterval(() => { if (key && !document.hidden) load(); }, REFRESH_MS);
applyLanguage();
const session = signInForm({
  t,
  check: (candidate) => api(candidate, "GET", "/v1/analytics"),
  opened(candidate) {
    key = candidate;
    $("dashboard").hidden = false;
    $("refresh").hidden = false;
    connect();
    load();
  },
  closed() {
    key = null;
    if (stream) { stream.close(); stream = null; }
    $("dashboard").hidden = true;
    $("refresh").hidden = true;
  },
});
