// drover dashboard: plain DOM, no build step. Every value from the server
// goes into the page as text (textContent), never as markup.
"use strict";

const STAGES = ["drain", "install", "activate", "verify", "enable"];
const main = document.getElementById("main");
let cleanup = () => {};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(state, prefix) {
  return el("span", { class: "badge " + (prefix || "s-") + state }, state.replace("_", " "));
}

class Unauthorized extends Error {}

async function api(path) {
  const r = await fetch("api/" + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) throw new Unauthorized();
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function login(token) {
  const r = await fetch("login", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
  });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(body.error || r.statusText);
  }
}

function showLogin(message) {
  cleanup();
  document.getElementById("logout").hidden = true;
  main.replaceChildren(document.getElementById("login-tpl").content.cloneNode(true));
  const err = document.getElementById("login-error");
  if (message) err.textContent = message;
  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await login(document.getElementById("login-token").value.trim());
      route();
    } catch (e) {
      err.textContent = e.message;
    }
  });
}

function fmtTime(s) {
  if (!s || s.startsWith("0001")) return "";
  const d = new Date(s);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function fmtDur(ms) {
  if (ms < 0 || !isFinite(ms)) return "";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function hostsOf(d) { return Object.values(d.hosts || {}); }

function counts(d) {
  const hs = hostsOf(d);
  return {
    total: hs.length,
    done: hs.filter((h) => h.stage === "done" || h.stage === "skipped").length,
    failed: hs.filter((h) => h.stage === "failed").length,
  };
}

function terminal(state) { return ["succeeded", "failed", "rolled_back", "aborted"].includes(state); }

// currentBatch: the first batch with a host in flight, else the first
// with one still pending.
function currentBatch(d) {
  const bs = d.batches || [];
  const stageOf = (n) => (d.hosts[n] || {}).stage;
  let i = bs.findIndex((b) => b.some((n) => STAGES.includes(stageOf(n))));
  if (i < 0) i = bs.findIndex((b) => b.some((n) => stageOf(n) === "pending"));
  return i;
}

function setNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
}

// ---- pages ----------------------------------------------------------------

async function deploymentsPage() {
  setNav("deployments");
  const render = async () => {
    const ds = (await api("deployments")).sort((a, b) => (a.created < b.created ? 1 : -1));
    const running = ds.filter((d) => !terminal(d.state));
    const rows = (list) => list.map((d) => {
      const c = counts(d);
      return el("tr", { class: "link", "data-deployment": d.id, onclick: () => { location.hash = "#/d/" + encodeURIComponent(d.id); } },
        el("td", {}, el("a", { href: "#/d/" + encodeURIComponent(d.id) }, d.id)),
        el("td", {}, d.name), el("td", {}, d.kind), el("td", {}, d.version),
        el("td", {}, badge(d.state)),
        el("td", {}, `${c.done}/${c.total}` + (c.failed ? `, ${c.failed} failed` : "")),
        el("td", {}, fmtTime(d.created)),
        el("td", {}, fmtDur((terminal(d.state) ? new Date(d.ended || d.updated) : new Date()) - new Date(d.created))));
    });
    const table = (list) => el("table", {},
      el("thead", {}, el("tr", {}, ["ID", "Name", "Kind", "Version", "State", "Hosts done", "Started", "Duration"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows(list)));
    main.replaceChildren(
      el("h1", {}, "Deployments"),
      el("h2", {}, "Running"),
      running.length ? table(running) : el("p", { class: "muted" }, "No deployment is running."),
      el("h2", {}, "History"),
      ds.length ? table(ds.filter((d) => terminal(d.state))) : el("p", { class: "muted" }, "No deployments yet."));
  };
  await render();
  const t = setInterval(() => render().catch(handle), 2000);
  return () => clearInterval(t);
}

function hostCard(d, name) {
  const h = d.hosts[name] || { stage: "pending" };
  const idx = STAGES.indexOf(h.stage);
  const bars = STAGES.map((s, i) => {
    let cls = "";
    if (h.stage === "done" || i < idx) cls = "passed";
    else if (i === idx) cls = "now";
    if (h.stage === "failed") cls = "bad";
    return el("i", { class: cls, title: s });
  });
  const on = h.stage === "done" ? "on " + h.target : h.stage === "skipped" ? "already on " + h.target : "→ " + h.target;
  return el("div", { class: "host st-" + h.stage, "data-host": name, "data-stage": h.stage, "data-target": h.target || "" },
    el("div", {}, el("span", { class: "name" }, name), " ", badge(h.stage, "st-")),
    el("div", { class: "muted release" }, on, h.phase === "rollback" ? " (rollback)" : ""),
    el("div", { class: "stages" }, bars));
}

async function deploymentPage(id) {
  setNav("deployments");
  let d = await api("deployments/" + encodeURIComponent(id));
  const log = el("div", { class: "events", id: "events" });
  const view = el("div", {});
  let live = true;
  const render = () => {
    const c = counts(d);
    const cb = currentBatch(d);
    const from = [...new Set(hostsOf(d).map((h) => h.from_current).filter(Boolean))];
    const end = terminal(d.state) ? new Date(d.ended || d.updated) : new Date();
    view.replaceChildren(
      el("h1", {}, `${d.name} ${d.version} `, badge(d.state), live && !terminal(d.state) ? el("span", { class: "live" }, "● live") : ""),
      el("div", { class: "summary", id: "summary", "data-state": d.state },
        el("div", {}, el("span", {}, "Deployment"), el("b", {}, d.id)),
        el("div", {}, el("span", {}, "Kind"), el("b", {}, d.kind)),
        el("div", {}, el("span", {}, "Release"), el("b", {}, (from.length ? from.join(", ") + " → " : "") + d.version)),
        el("div", {}, el("span", {}, "Batch"), el("b", {}, cb >= 0 ? `${cb + 1}/${d.batches.length}` : `${d.batches.length}/${d.batches.length}`)),
        el("div", {}, el("span", {}, "Hosts done"), el("b", { id: "hosts-done" }, `${c.done}/${c.total}`), c.failed ? el("b", { class: "error" }, ` ${c.failed} failed`) : ""),
        el("div", {}, el("span", {}, "Started"), el("b", {}, fmtTime(d.created))),
        el("div", {}, el("span", {}, "Elapsed"), el("b", {}, fmtDur(end - new Date(d.created))))),
      // A progress element, not a styled width: the page's CSP allows no inline style.
      el("progress", { max: c.total || 1, value: c.done }),
      d.error ? el("p", { class: "error" }, d.error) : "",
      d.pause_requested ? el("p", { class: "muted" }, "Pause requested: the deployment stops at the next safe point.") : "",
      el("h2", {}, "Batches"),
      ...(d.batches || []).map((b, i) => el("section", { class: "batch" + (i === cb && !terminal(d.state) ? " current" : "") },
        el("h3", {}, `Batch ${i + 1} of ${d.batches.length}`),
        el("div", { class: "hosts" }, b.map((n) => hostCard(d, n))))),
      el("h2", {}, "Events"));
  };
  render();
  main.replaceChildren(view, log);

  let timer = null;
  const refresh = () => {
    if (timer) return;
    timer = setTimeout(async () => {
      timer = null;
      try { d = await api("deployments/" + encodeURIComponent(id)); render(); } catch (e) { handle(e); }
    }, 100);
  };
  const es = new EventSource("api/deployments/" + encodeURIComponent(id) + "/events");
  const onEvent = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    const parts = [new Date(ev.time).toLocaleTimeString(), ev.kind, ev.host, ev.stage, ev.phase === "rollback" ? "(rollback)" : "", ev.state, ev.message, ev.error];
    log.append(el("div", {}, parts.filter(Boolean).join("  ")));
    log.scrollTop = log.scrollHeight;
    refresh();
  };
  for (const k of ["created", "stage", "state", "request", "trimmed"]) es.addEventListener(k, onEvent);
  es.addEventListener("end", () => { es.close(); live = false; refresh(); });
  const tick = setInterval(() => { if (!terminal(d.state)) render(); }, 1000);
  return () => { es.close(); clearInterval(tick); };
}

async function hostsPage() {
  setNav("hosts");
  const [ds, agents] = await Promise.all([api("deployments"), api("agents").catch(() => null)]);
  ds.sort((a, b) => (a.created < b.created ? 1 : -1));
  const hosts = new Map();
  for (const d of ds) {
    for (const h of hostsOf(d)) {
      const rec = hosts.get(h.name) || { name: h.name };
      if (!rec.last) { rec.last = d; rec.stage = h.stage; rec.phase = h.phase; }
      if (!rec.release && (h.stage === "done" || h.stage === "skipped")) rec.release = h.target;
      hosts.set(h.name, rec);
    }
  }
  const list = [...hosts.values()].sort((a, b) => a.name.localeCompare(b.name));
  main.replaceChildren(
    el("h1", {}, "Hosts"),
    list.length ? el("table", {},
      el("thead", {}, el("tr", {}, ["Host", "Release", "Last deployment", "Its state", "Host stage"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((h) => el("tr", { "data-host": h.name },
        el("td", {}, h.name), el("td", {}, h.release || ""),
        el("td", {}, el("a", { href: "#/d/" + encodeURIComponent(h.last.id) }, h.last.id)),
        el("td", {}, badge(h.last.state)), el("td", {}, badge(h.stage, "st-"))))))
      : el("p", { class: "muted" }, "No host has been deployed to yet."),
    el("h2", {}, "Agents"),
    agents === null ? el("p", { class: "muted" }, "Agents connect to the leader: open the dashboard on the leader to see them.")
      : agents.length ? el("table", {},
        el("thead", {}, el("tr", {}, ["Agent", "State", "Address", "Version", "Last heartbeat"].map((h) => el("th", {}, h)))),
        el("tbody", {}, agents.map((a) => el("tr", {},
          el("td", {}, a.name), el("td", {}, badge(a.state)), el("td", {}, a.address || ""),
          el("td", {}, a.version || ""), el("td", {}, fmtTime(a.last_heartbeat))))))
        : el("p", { class: "muted" }, "No agents are enrolled."));
  return () => {};
}

async function clusterPage() {
  setNav("cluster");
  const [node, members] = await Promise.all([api("node"), api("members").catch((e) => e)]);
  main.replaceChildren(
    el("h1", {}, "Cluster"),
    el("div", { class: "summary" },
      el("div", {}, el("span", {}, "This node"), el("b", {}, node.id)),
      el("div", {}, el("span", {}, "Role"), el("b", {}, node.state)),
      el("div", {}, el("span", {}, "Leader"), el("b", {}, node.leader || "unknown")),
      el("div", {}, el("span", {}, "Term"), el("b", {}, node.term)),
      el("div", {}, el("span", {}, "Version"), el("b", {}, node.version || ""))),
    members instanceof Error ? el("p", { class: "error" }, members.message)
      : el("table", {},
        el("thead", {}, el("tr", {}, ["Member", "Leader", "Raft address", "API address", "Voter"].map((h) => el("th", {}, h)))),
        el("tbody", {}, members.map((m) => el("tr", {},
          el("td", {}, m.id), el("td", {}, m.leader ? "yes" : ""), el("td", {}, m.raft_addr),
          el("td", {}, m.http_addr || ""), el("td", {}, m.voter ? "yes" : ""))))));
  return () => {};
}

// ---- routing -----------------------------------------------------------------

function handle(e) {
  if (e instanceof Unauthorized) showLogin();
  else main.replaceChildren(el("p", { class: "error" }, e.message || String(e)));
}

async function route() {
  cleanup();
  cleanup = () => {};
  const h = location.hash.replace(/^#/, "");
  try {
    const node = await api("node");
    document.getElementById("node").textContent = `node ${node.id} (${node.state.toLowerCase()})`;
    document.getElementById("logout").hidden = false;
    let m;
    if ((m = h.match(/^\/d\/(.+)$/))) cleanup = await deploymentPage(decodeURIComponent(m[1]));
    else if (h === "/hosts") cleanup = await hostsPage();
    else if (h === "/cluster") cleanup = await clusterPage();
    else cleanup = await deploymentsPage();
  } catch (e) {
    handle(e);
  }
}

async function start() {
  // A token in the fragment (#token=...: `drover ui` prints such a link)
  // is exchanged for the cookie, then removed from the address bar and
  // from the history. A fragment never reaches a server or its logs.
  const m = location.hash.match(/^#token=([^&]+)(?:&(.*))?$/);
  if (m) {
    const rest = m[2] ? "#" + m[2] : "#/";
    history.replaceState(null, "", location.pathname + rest);
    try { await login(decodeURIComponent(m[1])); } catch (e) { showLogin(e.message); return; }
  }
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("logout", { method: "POST", credentials: "same-origin" });
    showLogin();
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
