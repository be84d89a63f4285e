// The live run view: runs of a tenant, a run's call tree updating as its events arrive
// (Server-Sent Events), and the run as of any offset of its history. Plain JavaScript,
// no build step, no external resources. It talks only to the HTTP API: operations under
// /v1/tenants/{org}/ops/{operationId} and changes under /v1/tenants/{org}/changes.
// The API key stays in this page (the URL fragment or the form): it is sent only in the
// Authorization header, never in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  tenant: "", key: "",
  run: null,        // the run shown, or null
  offsets: [],      // the run's history offsets (distinct, ascending): the slider's stops
  asOf: null,       // the offset shown, or null for live
  seen: 0,          // the highest change position a feed delivered (minPosition of reads)
  feeds: [],
  runFeed: null,
  epoch: 0,         // bumped by connect(): answers for an older connection are dropped
};

// --- the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(`${body.code || status}: ${body.detail || body.title || "request failed"}`);
    this.status = status;
    this.code = body.code;
  }
}

async function op(operationId, input) {
  const response = await fetch(`/v1/tenants/${encodeURIComponent(state.tenant)}/ops/${operationId}`, {
    method: "POST",
    headers: { "Authorization": `Bearer ${state.key}`, "Content-Type": "application/json" },
    body: JSON.stringify(input),
  });
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON: reported by status */ }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// The latest of overlapping requests wins: an answer that arrives after a newer request
// was made is dropped, so a slow older answer never overwrites a newer one on screen.
function latest() {
  let ticket = 0;
  return () => { const mine = ++ticket; return () => mine === ticket; };
}

// An SSE stream read with fetch (EventSource cannot send an Authorization header),
// resumed after the last event id it saw when the connection drops (Last-Event-ID: no
// gap, no duplicate). onOpen runs at every (re)connection: what was committed before
// the stream began is read again then, so nothing falls between a read and the stream.
function follow(query, onChange, onOpen) {
  const feed = { stopped: false, open: false, refused: null, lastId: null, controller: null };
  const run = async () => {
    let pause = 250;
    while (!feed.stopped) {
      feed.controller = new AbortController();
      const headers = { "Authorization": `Bearer ${state.key}`, "Accept": "text/event-stream" };
      if (feed.lastId !== null) headers["Last-Event-ID"] = feed.lastId;
      try {
        const response = await fetch(
          `/v1/tenants/${encodeURIComponent(state.tenant)}/changes?${query}`,
          { headers, signal: feed.controller.signal, cache: "no-store" });
        if (!response.ok) {
          let detail = `HTTP ${response.status}`;
          try { detail = (await response.json()).detail || detail; } catch (e) { /* keep it */ }
          if (response.status < 500 && response.status !== 429) {  // retrying will not help
            feed.refused = detail;
            showLink();
            return;
          }
          throw new Error(detail);
        }
        feed.open = true;
        pause = 250;
        showLink();
        onOpen();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
            const event = { id: null, data: [] };
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith("id:")) event.id = line.slice(3).trim();
              else if (line.startsWith("data:")) event.data.push(line.slice(5).replace(/^ /, ""));
            }
            if (event.id !== null && event.id !== "") feed.lastId = event.id;
            if (event.data.length) {
              let change = null;
              try { change = JSON.parse(event.data.join("\n")); } catch (e) { continue; }
              if (change && Number.isInteger(change.position)) state.seen = Math.max(state.seen, change.position);
              onChange(change);
            }
          }
        }
      } catch (error) {
        if (feed.stopped) return;
      }
      feed.open = false;
      if (feed.stopped) return;
      showLink();
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 5000);
    }
  };
  feed.stop = () => { feed.stopped = true; if (feed.controller) feed.controller.abort(); };
  state.feeds.push(feed);
  run();
  return feed;
}

// "live" once every feed is connected; else what is wrong.
function showLink() {
  const feeds = state.feeds.filter((feed) => !feed.stopped);
  const refused = feeds.find((feed) => feed.refused !== null);
  let text = "live";
  if (refused) text = `refused: ${refused.refused}`;
  else if (!feeds.length) text = "not connected";
  else if (!feeds.every((feed) => feed.open)) text = feeds.some((f) => f.lastId !== null || f.open) ? "reconnecting…" : "connecting…";
  const link = $("link");
  link.textContent = text;
  link.dataset.state = refused ? "refused" : text === "live" ? "live" : "connecting";
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

// Coalesce bursts of changes into one refresh.
function debounced(action, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(action, ms); };
}

// --- rendering ---------------------------------------------------------------------------

const time = (ms) => (ms == null ? "" : new Date(ms).toISOString().replace("T", " ").slice(0, 23));
const duration = (ms) => (ms == null ? "" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);

function el(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text != null) made.textContent = text;
  return made;
}

function badge(status) {
  return el("span", `badge ${status}`, status);
}

function renderRuns(runs) {
  const body = $("runs");
  body.replaceChildren();
  $("runs-empty").hidden = runs.length > 0;
  $("runs-empty").textContent = $("status").value || $("since").value ? "no runs match the filters" : "no runs yet";
  for (const run of runs) {
    const row = document.createElement("tr");
    row.dataset.testid = `run-${run.runId}`;
    row.dataset.status = run.status;
    row.tabIndex = 0;
    if (run.runId === state.run) row.className = "selected";
    const name = el("td", "run-id");
    name.append(el("span", "id", run.runId), el("span", "op", run.rootOperation));
    const status = el("td");
    status.append(badge(run.status));
    const calls = el("td", "num", String(run.calls));
    if (run.failedCalls) calls.append(el("span", "failed-count", ` ${run.failedCalls} failed`));
    row.append(name, status, el("td", "time", time(run.startedAt)),
      el("td", "num", duration(run.durationMs) || "…"), calls);
    row.addEventListener("click", () => openRun(run.runId));
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") openRun(run.runId); });
    body.append(row);
  }
}

function summary(run) {
  const open = run.runningCalls + run.pendingCalls;
  return `${run.rootOperation} · started ${time(run.startedAt)} · ` +
    `${run.durationMs == null ? "running" : duration(run.durationMs)} · ` +
    `${run.calls} call${run.calls === 1 ? "" : "s"}, ${run.failedCalls} failed, ${open} open`;
}

function callItem(call) {
  const item = el("li", "call");
  item.dataset.testid = `call-${call.requestId}`;
  item.dataset.status = call.status;
  const line = el("div", "line");
  line.append(badge(call.status), el("span", "op", call.operation), el("span", "id", call.requestId));
  if (call.operationType && call.operationType !== "query") line.append(el("span", "kind", call.operationType));
  line.append(el("span", "time", duration(call.durationMs)));
  line.title = `requested ${time(call.requestedAt)}` +
    (call.completedAt != null ? ` · ended ${time(call.completedAt)}` : "");
  item.append(line);
  if (call.errorCode || call.errorMessage) {
    const error = el("div", "error");
    error.dataset.testid = `error-${call.requestId}`;
    error.append(el("span", "code", call.errorCode || "ERROR"), " ", el("span", "message", call.errorMessage || ""));
    const details = errorDetails.get(call.requestId);
    if (details != null) {
      const shown = el("pre", "details", JSON.stringify(details, null, 2));
      shown.dataset.testid = `details-${call.requestId}`;
      error.append(shown);
    }
    item.append(error);
  }
  return item;
}

// An error's details (the call.error event's `details`) are not in the run's call rows:
// they come from the run's call-protocol events (graphstore.runs.export), read once per
// run when a failed call's details are not known yet.
const errorDetails = new Map();
const detailsAsked = new Set();

async function loadDetails(run, calls) {
  const missing = calls.filter((c) => c.errorCode && !errorDetails.has(c.requestId));
  const key = `${run.runId}:${missing.map((c) => c.requestId).join(",")}`;
  if (!missing.length || detailsAsked.has(key)) return;
  detailsAsked.add(key);
  try {
    const exported = await op("graphstore.runs.export", { runId: run.runId });
    for (const event of exported.events) {
      if (event.type === "call.error") errorDetails.set(event.payload.requestId, event.payload.details ?? null);
    }
    if (state.rendered && state.rendered.run.runId === run.runId) renderTree(state.rendered.run, state.rendered.calls, false);
  } catch (e) { detailsAsked.delete(key); }
}

// The tree from the parent links, whatever order the calls come in (a parent listed
// after its children still gets them); siblings keep the order given (request time).
function renderTree(run, calls, withDetails = true) {
  state.rendered = { run, calls };
  if (withDetails) loadDetails(run, calls);
  $("run-title").textContent = `run ${run.runId}`;
  $("run-status").replaceChildren(badge(run.status));
  $("run-summary").textContent = summary(run);
  const items = new Map();
  for (const call of calls) items.set(call.requestId, { call, item: callItem(call), children: null });
  const tree = $("tree");
  const roots = [];
  for (const node of items.values()) {
    const parent = node.call.parent != null && node.call.requestId !== node.call.parent ? items.get(node.call.parent) : undefined;
    if (parent) {
      if (!parent.children) { parent.children = el("ul"); parent.item.append(parent.children); }
      parent.children.append(node.item);
    } else roots.push(node.item);
  }
  tree.replaceChildren(...roots);
}

function clearRun(title, text) {
  $("run-title").textContent = title;
  $("run-status").replaceChildren();
  $("run-summary").textContent = text;
  $("tree").replaceChildren();
}

function showSlider() {
  const slider = $("as-of");
  const stops = state.offsets.length;
  slider.max = String(Math.max(0, stops - 1));
  slider.disabled = stops === 0;
  if (state.asOf === null) {
    slider.value = slider.max;
    $("as-of-label").textContent = "live";
  } else {
    const index = state.offsets.indexOf(state.asOf);
    if (index >= 0) slider.value = String(index);
    $("as-of-label").textContent = `as of offset ${state.asOf} (${index + 1}/${stops})`;
  }
  $("as-of-pane").classList.toggle("past", state.asOf !== null);
  $("live").disabled = state.asOf === null;
}

// --- behaviour -----------------------------------------------------------------------------

const runsTurn = latest();

async function refreshRuns() {
  const current = runsTurn();
  const epoch = state.epoch;
  const input = { limit: 100, minPosition: state.seen };
  if ($("status").value) input.status = [$("status").value];
  if ($("since").value) {
    const since = new Date($("since").value).getTime();
    if (Number.isFinite(since)) input.since = since;
  }
  try {
    const page = await op("graphstore.runs.list", input);
    if (current() && epoch === state.epoch) renderRuns(page.runs);
  } catch (e) { if (current() && epoch === state.epoch) notice(e.message); }
}

const runTurn = latest();

async function refreshRun() {
  if (state.run === null) return;
  const runId = state.run;
  const current = runTurn();
  const fresh = () => current() && runId === state.run;
  try {
    const [history, shown] = await Promise.all([
      op("graphstore.runs.history", { runId }),
      state.asOf === null ? op("graphstore.runs.show", { runId, minPosition: state.seen }) : null,
    ]);
    if (!fresh()) return;
    state.offsets = [...new Set(history.entries.map((entry) => entry.offset))].sort((a, b) => a - b);
    showSlider();
    if (state.asOf === null && shown) renderTree(shown.run, shown.calls);
    notice("");
  } catch (e) {
    if (!fresh()) return;
    if (e.status === 404) {  // not started yet (or not attached to its root yet)
      state.offsets = [];
      showSlider();
      if (state.asOf === null) clearRun(`run ${runId}`, "waiting for the run to start…");
    } else notice(e.message);
  }
}

const asOfTurn = latest();

async function showAsOf(index) {
  const offset = state.offsets[index];
  if (offset === undefined || state.run === null) return;
  const runId = state.run;
  const current = asOfTurn();
  state.asOf = offset;
  showSlider();
  try {
    const snapshot = await op("graphstore.runs.asOf", { runId, offset });
    if (current() && state.asOf === offset && runId === state.run) renderTree(snapshot.run, snapshot.calls);
  } catch (e) {
    if (!(current() && state.asOf === offset && runId === state.run)) return;
    // at an offset before the root was recorded, its calls were not a run yet
    if (e.status === 404) clearRun(`run ${runId}`, `not a run yet at offset ${offset}`);
    else notice(e.message);
  }
}

function goLive() {
  state.asOf = null;
  asOfTurn();  // an as-of answer still on its way is dropped
  showSlider();
  refreshRun();
}

function openRun(runId) {
  state.run = runId;
  state.asOf = null;
  state.offsets = [];
  asOfTurn();
  $("run-pane").hidden = false;
  $("run-hint").hidden = true;
  clearRun(`run ${runId}`, "loading…");
  showSlider();
  for (const row of $("runs").children) row.classList.toggle("selected", row.dataset.testid === `run-${runId}`);
  if (state.runFeed) {
    state.runFeed.stop();
    state.feeds = state.feeds.filter((feed) => feed !== state.runFeed);
  }
  const refresh = debounced(refreshRun, 30);
  state.runFeed = follow(`run=${encodeURIComponent(runId)}`, refresh, refresh);
  showLink();
  refreshRun();
}

function connect(tenant, key) {
  for (const feed of state.feeds) feed.stop();
  Object.assign(state, {
    tenant, key, run: null, asOf: null, offsets: [], seen: 0, feeds: [], runFeed: null,
    epoch: state.epoch + 1,
  });
  $("run-pane").hidden = true;
  $("run-hint").hidden = false;
  $("runs").replaceChildren();
  notice("");
  const refresh = debounced(refreshRuns, 50);
  follow("projector=flowgraph", refresh, refresh);
  showLink();
  refreshRuns();
}

$("connect").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("tenant").value.trim(), $("key").value.trim());
});
$("status").addEventListener("change", refreshRuns);
$("since").addEventListener("change", refreshRuns);
$("as-of").addEventListener("input", (event) => showAsOf(Number(event.target.value)));
$("live").addEventListener("click", goLive);
window.addEventListener("pagehide", () => { for (const feed of state.feeds) feed.stop(); });

// #tenant=acme&key=gsk_...&run=run-1 fills the form (the fragment never reaches a server).
const given = new URLSearchParams(location.hash.slice(1));
if (given.get("tenant") && given.get("key")) {
  $("tenant").value = given.get("tenant");
  $("key").value = given.get("key");
  history.replaceState(null, "", location.pathname);  // the key leaves the address bar
  connect(given.get("tenant"), given.get("key"));
  if (given.get("run")) openRun(given.get("run"));
} else showLink();
