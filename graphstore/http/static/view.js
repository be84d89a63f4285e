// The live run view: runs of a tenant, a run's call tree updating as its events arrive
// (Server-Sent Events), and the run as of any offset of its history. Plain JavaScript,
// no build step. It talks only to the HTTP API: operations under
// /v1/tenants/{org}/ops/{operationId} and changes under /v1/tenants/{org}/changes.
// The API key stays in this page (the URL fragment or the form): it is sent only in the
// Authorization header, never in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { tenant: "", key: "", run: null, history: [], asOf: null, feeds: [] };

// --- the API ---------------------------------------------------------------------------

async function op(operationId, input) {
  const response = await fetch(`/v1/tenants/${encodeURIComponent(state.tenant)}/ops/${operationId}`, {
    method: "POST",
    headers: { "Authorization": `Bearer ${state.key}`, "Content-Type": "application/json" },
    body: JSON.stringify(input),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${body.code}: ${body.detail}`);
  return body;
}

// An SSE stream read with fetch (EventSource cannot send an Authorization header),
// resumed after the last event id it saw when the connection drops.
function follow(query, onChange) {
  const feed = { stopped: false, lastId: null, controller: null };
  const run = async () => {
    while (!feed.stopped) {
      feed.controller = new AbortController();
      const headers = { "Authorization": `Bearer ${state.key}`, "Accept": "text/event-stream" };
      if (feed.lastId !== null) headers["Last-Event-ID"] = feed.lastId;
      try {
        const response = await fetch(
          `/v1/tenants/${encodeURIComponent(state.tenant)}/changes?${query}`,
          { headers, signal: feed.controller.signal });
        if (!response.ok) { link(`refused: ${(await response.json()).detail}`); return; }
        link("live");
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
              else if (line.startsWith("data:")) event.data.push(line.slice(5).trimStart());
            }
            if (event.id !== null) feed.lastId = event.id;
            if (event.data.length) onChange(JSON.parse(event.data.join("\n")));
          }
        }
      } catch (error) {
        if (feed.stopped) return;
      }
      if (!feed.stopped) { link("reconnecting"); await new Promise((r) => setTimeout(r, 500)); }
    }
  };
  run();
  feed.stop = () => { feed.stopped = true; if (feed.controller) feed.controller.abort(); };
  state.feeds.push(feed);
  return feed;
}

function link(text) { $("link").textContent = text; }

// Coalesce bursts of changes into one refresh.
function debounced(action, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(action, ms); };
}

// --- rendering ---------------------------------------------------------------------------

const time = (ms) => (ms == null ? "" : new Date(ms).toISOString().replace("T", " ").slice(0, 23));
const duration = (ms) => (ms == null ? "" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge ${status}`;
  span.textContent = status;
  return span;
}

function renderRuns(runs) {
  const body = $("runs");
  body.replaceChildren();
  $("runs-empty").hidden = runs.length > 0;
  for (const run of runs) {
    const row = document.createElement("tr");
    row.dataset.testid = `run-${run.runId}`;
    row.dataset.status = run.status;
    if (run.runId === state.run) row.className = "selected";
    const cells = [run.runId, null, time(run.startedAt), duration(run.durationMs),
      `${run.calls}${run.failedCalls ? ` (${run.failedCalls} failed)` : ""}`];
    cells.forEach((text, i) => {
      const cell = document.createElement("td");
      if (i === 1) cell.append(badge(run.status)); else cell.textContent = text;
      row.append(cell);
    });
    row.addEventListener("click", () => openRun(run.runId));
    body.append(row);
  }
}

function renderTree(run, calls) {
  $("run-title").textContent = `run ${run.runId}`;
  $("run-summary").textContent =
    `${run.status} · started ${time(run.startedAt)} · ${duration(run.durationMs) || "running"} · ` +
    `${run.calls} calls, ${run.failedCalls} failed, ${run.runningCalls + run.pendingCalls} open`;
  const items = new Map();
  const tree = $("tree");
  tree.replaceChildren();
  for (const call of calls) {
    const item = document.createElement("li");
    item.className = "call";
    item.dataset.testid = `call-${call.requestId}`;
    item.dataset.status = call.status;
    const op = document.createElement("span");
    op.className = "op";
    op.textContent = call.operation;
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = call.requestId;
    const took = document.createElement("span");
    took.className = "time";
    took.textContent = duration(call.durationMs);
    item.append(op, " ", badge(call.status), id, took);
    if (call.errorCode || call.errorMessage) {
      const error = document.createElement("div");
      error.className = "error";
      error.dataset.testid = `error-${call.requestId}`;
      error.textContent = `${call.errorCode || "error"}: ${call.errorMessage || ""}`;
      item.append(error);
    }
    const children = document.createElement("ul");
    item.append(children);
    items.set(call.requestId, children);
    const parent = call.parent && items.get(call.parent);
    (parent || tree).append(item);
  }
}

// --- behaviour -----------------------------------------------------------------------------

async function refreshRuns() {
  const input = { limit: 100 };
  if ($("status").value) input.status = [$("status").value];
  if ($("since").value) input.since = new Date($("since").value).getTime();
  try { renderRuns((await op("graphstore.runs.list", input)).runs); } catch (e) { link(e.message); }
}

async function refreshRun() {
  if (state.run === null) return;
  const runId = state.run;
  try {
    const history = await op("graphstore.runs.history", { runId });
    state.history = history.entries;
    const slider = $("as-of");
    slider.max = String(Math.max(0, state.history.length - 1));
    if (state.asOf === null) {
      slider.value = slider.max;
      const shown = await op("graphstore.runs.show", { runId });
      if (runId === state.run && state.asOf === null) renderTree(shown.run, shown.calls);
    }
  } catch (e) { link(e.message); }
}

async function showAsOf(index) {
  const entry = state.history[index];
  if (!entry) return;
  state.asOf = entry.offset;
  $("as-of-label").textContent = `as of offset ${entry.offset} (${index + 1}/${state.history.length})`;
  try {
    const snapshot = await op("graphstore.runs.asOf", { runId: state.run, offset: entry.offset });
    if (state.asOf === entry.offset) renderTree(snapshot.run, snapshot.calls);
  } catch (e) { link(e.message); }
}

function openRun(runId) {
  state.run = runId;
  state.asOf = null;
  $("as-of-label").textContent = "live";
  $("run-pane").hidden = false;
  for (const row of $("runs").children) row.classList.toggle("selected", row.dataset.testid === `run-${runId}`);
  if (state.runFeed) state.runFeed.stop();
  state.runFeed = follow(`run=${encodeURIComponent(runId)}`, debounced(refreshRun, 30));
  refreshRun();
}

function connect(tenant, key) {
  for (const feed of state.feeds) feed.stop();
  state.feeds = [];
  Object.assign(state, { tenant, key, run: null, asOf: null, runFeed: null });
  $("run-pane").hidden = true;
  refreshRuns();
  follow("projector=flowgraph", debounced(refreshRuns, 50));
}

$("connect").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("tenant").value.trim(), $("key").value.trim());
});
$("status").addEventListener("change", refreshRuns);
$("since").addEventListener("change", refreshRuns);
$("as-of").addEventListener("input", (event) => showAsOf(Number(event.target.value)));
$("live").addEventListener("click", () => {
  state.asOf = null;
  $("as-of-label").textContent = "live";
  refreshRun();
});

// #tenant=acme&key=gsk_...&run=run-1 fills the form (the fragment never reaches a server).
const given = new URLSearchParams(location.hash.slice(1));
if (given.get("tenant") && given.get("key")) {
  $("tenant").value = given.get("tenant");
  $("key").value = given.get("key");
  history.replaceState(null, "", location.pathname);  // the key leaves the address bar
  connect(given.get("tenant"), given.get("key"));
  if (given.get("run")) openRun(given.get("run"));
}
