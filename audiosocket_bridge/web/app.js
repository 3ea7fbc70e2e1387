// The caption page: live calls from /stream (WebSocket), stored calls, conversations and search
// from /api. Plain DOM, textContent only (transcripts are never parsed as HTML).
"use strict";

const state = {
  token: "",
  socket: null,
  calls: new Map(),          // uuid -> {label, key, startedMs, lastFinal, ended, speakerIndex}
  conversations: new Map(),  // conversation id (or the uuid of a lone leg) -> {root, lines, legs}
  lines: new Map(),          // "uuid:segment" -> line element
  alerted: new Map(),        // "uuid:segment" -> rule (an alert may arrive before its line is drawn)
};

function $(id) { return document.getElementById(id); }

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
}

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", !!live);
}

// ------------------------------------------------------------ the token

function takeToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("captions-token", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("captions-token") || "";
}

async function api(path) {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401 || response.status === 403) {
    $("login").hidden = false;
    setStatus(response.status === 403 ? "transcripts over HTTP are off" : "token needed");
    throw new Error(`refused: ${response.status}`);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function withToken(path) {
  return state.token ? `${path}?token=${encodeURIComponent(state.token)}` : path;
}

// ------------------------------------------------------------ live captions

function conversationOf(call) {
  let conv = state.conversations.get(call.key);
  if (!conv) {
    const root = el("div", "conversation");
    root.dataset.conversation = call.key;
    const title = el("h3");
    const lines = el("div", "lines");
    root.append(title, lines);
    const empty = $("live").querySelector(".empty");
    if (empty) empty.remove();
    $("live").prepend(root);
    conv = { root, title, lines, legs: [], t0: call.startedMs / 1000 };
    state.conversations.set(call.key, conv);
  }
  return conv;
}

function callStarted(m) {
  if (state.calls.has(m.call)) return;
  const call = {
    label: m.speaker || m.channel || m.call.slice(0, 8),
    key: m.conversation || m.call,
    startedMs: Date.parse(m.started_at) || Date.now(),
    lastFinal: -1, ended: false,
  };
  state.calls.set(m.call, call);
  const conv = conversationOf(call);
  call.speakerIndex = conv.legs.length;
  conv.legs.push(m.call);
  conv.t0 = Math.min(conv.t0, call.startedMs / 1000);  // the conversation's clock: its first leg
  conv.root.classList.remove("ended");
  conv.title.textContent = (m.conversation ? `Conversation ${m.conversation}: ` : "Call: ") +
    conv.legs.map((uuid) => state.calls.get(uuid).label).join(" / ");
}

function placeLine(conv, line) {
  // interleaved by time: the legs' lines on one clock
  const t = Number(line.dataset.t);
  let before = null;
  for (const other of conv.lines.children) {
    if (Number(other.dataset.t) > t) { before = other; break; }
  }
  conv.lines.insertBefore(line, before);
  conv.lines.scrollTop = conv.lines.scrollHeight;
}

function showText(m) {
  const call = state.calls.get(m.call);
  if (!call) return;
  const key = `${m.call}:${m.segment}`;
  let line = state.lines.get(key);
  if (line && line.classList.contains("final") && m.type === "partial") return;
  const conv = conversationOf(call);
  if (!line) {
    line = el("div", `line speaker-${call.speakerIndex % 4}`);
    line.dataset.call = m.call;
    line.dataset.segment = m.segment;
    line.append(el("span", "when"), el("span", "who", call.label), el("span", "text"));
    state.lines.set(key, line);
  }
  line.classList.toggle("partial", m.type === "partial");
  line.classList.toggle("final", m.type === "final");
  line.dataset.t = String(call.startedMs / 1000 + m.start_s);
  line.querySelector(".when").textContent = clock(Number(line.dataset.t) - conv.t0);
  line.querySelector(".text").textContent = m.text;
  placeLine(conv, line);
  if (state.alerted.has(key)) markAlert(line, state.alerted.get(key));
  if (m.type === "final") call.lastFinal = Math.max(call.lastFinal, m.segment);
}

function markAlert(line, rule) {
  if (line.classList.contains("alert")) return;
  line.classList.add("alert");
  line.append(el("span", "rule", `alert: ${rule}`));
}

function showAlert(m) {
  const key = `${m.call}:${m.segment}`;
  state.alerted.set(key, m.rule);
  const line = state.lines.get(key);
  if (line) markAlert(line, m.rule);
  const call = state.calls.get(m.call);
  const item = el("li", "alert", `${call ? call.label : m.call.slice(0, 8)}: "${m.matched}" (${m.rule})`);
  item.dataset.call = m.call;
  $("alerts").prepend(item);
}

function callEnded(m) {
  const call = state.calls.get(m.call);
  if (!call) return;
  call.ended = true;
  const conv = state.conversations.get(call.key);
  if (conv && conv.legs.every((uuid) => state.calls.get(uuid).ended)) conv.root.classList.add("ended");
  loadRecent().catch(() => {});
}

const handlers = { call_started: callStarted, partial: showText, final: showText,
                   alert: showAlert, call_ended: callEnded };

function connect() {
  const since = [...state.calls.entries()].filter(([, c]) => c.lastFinal >= 0 && !c.ended)
    .map(([uuid, c]) => `${uuid}:${c.lastFinal + 1}`).join(",");
  const params = new URLSearchParams({ token: state.token });
  if (since) params.set("since", since);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/stream?${params}`);
  state.socket = socket;
  socket.onopen = () => setStatus("live", true);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    const handle = handlers[message.type];
    if (handle) handle(message);
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    setStatus("reconnecting");
    setTimeout(connect, 1000);  // resumes: since= asks again for the finals not yet seen
  };
}

// ------------------------------------------------------------ stored calls, search

function exportLinks(base) {
  const p = $("exports");
  p.replaceChildren();
  for (const fmt of ["txt", "srt", "vtt", "json"]) {
    const a = el("a", "export", fmt.toUpperCase());
    a.href = withToken(`${base}/export.${fmt}`);
    p.append(a);
  }
}

function showStored(title, rows, alerts) {
  $("stored").hidden = false;
  $("stored-title").textContent = title;
  const list = $("transcript");
  list.replaceChildren();
  const speakers = new Map();
  for (const row of rows) {
    const li = el("li", "line final");
    if (row.speaker !== undefined) {
      if (!speakers.has(row.speaker)) speakers.set(row.speaker, speakers.size);
      li.classList.add(`speaker-${speakers.get(row.speaker) % 4}`);
    }
    li.append(el("span", "when", `${clock(row.start_s)}–${clock(row.end_s)}`));
    if (row.speaker) li.append(el("span", "who", row.speaker));
    li.append(el("span", "text", row.text));
    const rule = alerts.get(row.index);
    if (rule) markAlert(li, rule);
    list.append(li);
  }
}

async function showCall(uuid) {
  const doc = await api(`/api/calls/${encodeURIComponent(uuid)}`);
  const alerts = new Map(doc.alerts.map((a) => [a.segment, a.rule]));
  showStored(`Call ${doc.uuid}${doc.speaker ? ` (${doc.speaker})` : ""} – ${doc.started_at}`,
             doc.segments.filter((s) => s.text), alerts);
  exportLinks(`/api/calls/${encodeURIComponent(uuid)}`);
  if (doc.conversation) {
    const a = el("a", "conversation-link", "whole conversation");
    a.href = "#";
    a.onclick = (event) => { event.preventDefault(); showConversation(doc.conversation); };
    $("exports").append(a);
  }
}

async function showConversation(id) {
  const doc = await api(`/api/conversations/${encodeURIComponent(id)}`);
  showStored(`Conversation ${doc.conversation} – ${doc.started_at}`, doc.segments, new Map());
  exportLinks(`/api/conversations/${encodeURIComponent(id)}`);
}

function callItem(text, uuid) {
  const li = el("li", "", text);
  li.dataset.call = uuid;
  li.onclick = () => showCall(uuid).catch((e) => setStatus(e.message));
  return li;
}

async function loadRecent() {
  const calls = await api("/api/calls?limit=30");
  $("recent").replaceChildren(...calls.map((c) => callItem(
    `${c.started_at.slice(0, 19).replace("T", " ")} ${c.speaker || c.channel || c.uuid.slice(0, 8)}` +
    (c.live ? " (live)" : ""), c.uuid)));
}

async function runSearch(event) {
  event.preventDefault();
  const q = $("search-q").value.trim();
  if (!q) return;
  const hits = await api(`/api/search?q=${encodeURIComponent(q)}`);
  const items = hits.map((h) => {
    const li = callItem(`${h.started_at.slice(0, 16).replace("T", " ")} ${h.speaker || h.channel || h.call.slice(0, 8)}: `, h.call);
    li.classList.add("hit");
    li.append(el("mark", "", h.text));
    return li;
  });
  $("results").replaceChildren(...(items.length ? items : [el("li", "empty", "nothing found")]));
}

// ------------------------------------------------------------ start

async function start() {
  try {
    await loadRecent();
  } catch (error) {
    return;  // the login form is shown
  }
  $("login").hidden = true;
  connect();
}

document.addEventListener("DOMContentLoaded", () => {
  state.token = takeToken();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("captions-token", state.token);
    start();
  });
  $("search").addEventListener("submit", (event) => runSearch(event).catch((e) => setStatus(e.message)));
  start();
});
