// The preheat dashboard: a live view of `preheat serve`, fed by its
// Server-Sent Events stream (/cache/warming/events) and its JSON API.
// Plain JavaScript, no framework, no build step, nothing loaded from elsewhere.
'use strict';

const API = '/cache/warming';
// keys/s chart: one point per bucket, over a sliding window.
const RATE_BUCKET_MS = 2000;
const RATE_WINDOW_MS = 3 * 60 * 1000;
// A gap longer than this between two progress events of a run (a reconnect)
// is not counted as throughput.
const RATE_MAX_GAP_MS = 3000;
const MAX_ERRORS = 20;
const MAX_HISTORY_RUNS = 20;
const SLOW_REFRESH_MS = 30000;

// ---------------------------------------------------------------------------
// State: what the server told us, merged from the stream and the API.
// ---------------------------------------------------------------------------
const state = {
  active: new Map(), // run_id → RUN (the latest progress event of each active run)
  finished: new Set(), // run ids seen in run_finished: late progress events for them are ignored
  lastRun: null, // FINISHED of the most recent run, from the stream or the status
  latestHistoryRun: null, // newest whole-run row of GET runs (the last run of an earlier process)
  pluginsOf: new Map(), // run_id → plugin names, from events (for history rows without per-plugin rows)
};

// Extra history refreshes while the job store catches up with a finished run.
let historyRetries = 0;

// keys/s: keys completed per time bucket, and each run's last progress sample.
const rate = {
  buckets: new Map(), // bucket index (time / RATE_BUCKET_MS) → keys completed in it
  last: new Map(), // run_id → { completed, at }
};

// ---------------------------------------------------------------------------
// Small helpers: DOM building (text only, never HTML from data) and formatting.
// ---------------------------------------------------------------------------
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ''));
  return node;
}

const num = (n) => (typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString('en-US') : '–');
const pad = (n) => String(n).padStart(2, '0');

function toDate(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? d : null;
}

// "12:03:04" in the browser's time zone.
function clock(iso) {
  const d = toDate(iso);
  return d ? `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` : '–';
}

// The time, preceded by the date when it is not today.
function when(iso) {
  const d = toDate(iso);
  if (!d) return '–';
  if (d.toDateString() === new Date().toDateString()) return clock(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(iso)}`;
}

function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  return h ? `${h}h ${pad(m)}m` : `${m}m ${pad(s % 60)}s`;
}

// "in 4m 02s" / "3m 10s ago"; updated every second by the ticker.
function relative(iso) {
  const d = toDate(iso);
  if (!d) return '';
  const ms = d.getTime() - Date.now();
  if (Math.abs(ms) < 1000) return 'now';
  const text = duration(Math.abs(Math.round(ms / 1000) * 1000));
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

// Never shows 100% before the run has really completed everything.
function percentText(p) {
  if (typeof p !== 'number' || !Number.isFinite(p)) return '–';
  if (p >= 100) return '100%';
  return `${(Math.floor(p * 10) / 10).toFixed(1)}%`;
}

function shortId(id) {
  const s = String(id ?? '');
  return s.length > 12 ? `${s.slice(0, 8)}…` : s;
}

// Whether FINISHED `a` ended after `b` (a status fetched before a run_finished event may arrive after it).
const isLater = (a, b) => !b || (toDate(finishedAt(a)) || 0) >= (toDate(finishedAt(b)) || 0);

const finishedAt = (f) => {
  const start = toDate(f.started_at);
  return start && typeof f.duration_ms === 'number' ? new Date(start.getTime() + f.duration_ms).toISOString() : null;
};

// The six outcomes: success = written + skipped_fresh + skipped_by_plugin; failed = failed + invalid.
const OUTCOMES = ['written', 'skipped_fresh', 'skipped_by_plugin', 'invalid', 'failed', 'abandoned'];
const sumOf = (c, names) => names.reduce((total, name) => total + (Number(c?.[name]) || 0), 0);

async function getJSON(path) {
  const response = await fetch(path, { cache: 'no-store', headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// Replaces a table's rows; an empty list shows one row with `emptyText`.
function fillTable(section, rows, emptyText) {
  const columns = document.querySelectorAll(`${section} thead th`).length || 1;
  const tbody = $(`${section} tbody`);
  if (rows.length) tbody.replaceChildren(...rows);
  else tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: columns }, emptyText)));
}

const numCell = (n, bad = false) => el('td', { class: bad && n > 0 ? 'num bad' : 'num' }, num(n));

// ---------------------------------------------------------------------------
// Views: a RUN (live progress) or a FINISHED (run_finished / last_run) as the
// one shape the progress card, the plugin table and the error table draw.
// ---------------------------------------------------------------------------
function viewOfRun(run) {
  const p = run.progress || {};
  const perf = run.performance || {};
  return {
    runId: run.run_id,
    state: run.status === 'stopping' ? 'stopping' : 'running',
    title: `run ${shortId(run.run_id)} · ${(run.plugins || []).join(', ')} · ${run.strategy || ''} · started ${clock(run.started_at)}`,
    percent: runPercent(run),
    completed: p.completed,
    total: p.total_items,
    totalKnown: p.total_known !== false,
    success: p.success,
    failed: p.failed,
    rate: perf.items_per_second,
    batch: run.current_batch ? `${num(run.current_batch.processed)} / ${num(run.current_batch.batch_size)}` : '–',
    eta: perf.estimated_completion ? `${clock(perf.estimated_completion)} (${relative(perf.estimated_completion)})` : '–',
    perPlugin: Object.entries(run.per_plugin || {}),
    errors: (run.errors || []).map((e) => ({ plugin: e.plugin, key: e.key, error: e.error, retries: e.retry_count })),
  };
}

function viewOfFinished(f) {
  const totals = f.totals || {};
  const total = Number(totals.enumerated) || 0;
  const completed = sumOf(totals, OUTCOMES);
  const plugins = (f.plugins || []).map((p) => [p.name, p.counters || p]);
  return {
    runId: f.run_id,
    state: 'finished',
    status: f.status,
    title: `run ${shortId(f.run_id)} · ${plugins.map(([name]) => name).join(', ')} · ${f.status} in ${duration(f.duration_ms)}`,
    percent: total ? (completed / total) * 100 : 100,
    completed,
    total,
    totalKnown: true,
    success: sumOf(totals, ['written', 'skipped_fresh', 'skipped_by_plugin']),
    failed: sumOf(totals, ['failed', 'invalid']),
    rate: f.duration_ms > 0 ? (completed * 1000) / f.duration_ms : null,
    batch: '–',
    eta: `finished ${clock(finishedAt(f))}`,
    perPlugin: plugins,
    problem: [f.error, ...(f.plugins || []).filter((p) => p.error).map((p) => `${p.name}: ${p.error}`)]
      .filter(Boolean)
      .join(' · '),
    errors: (f.errors || []).map((e) => ({
      plugin: e.plugin,
      key: e.key,
      error: e.error,
      retries: Math.max(0, (Number(e.attempts) || 0) - 1),
    })),
  };
}

// A run's percentage from its counts (the server's is rounded: 99.96 would read 100).
function runPercent(run) {
  const p = run.progress || {};
  if (p.total_items > 0 && typeof p.completed === 'number') return (p.completed / p.total_items) * 100;
  return typeof p.percentage === 'number' ? p.percentage : 0;
}

// Active runs, most recently started first.
function activeRuns() {
  return [...state.active.values()].sort((a, b) => (toDate(b.started_at) || 0) - (toDate(a.started_at) || 0));
}

function currentView() {
  const runs = activeRuns();
  if (runs.length) return viewOfRun(runs[0]);
  return state.lastRun ? viewOfFinished(state.lastRun) : null;
}

// ---------------------------------------------------------------------------
// Status line: what the service is doing, obvious at a glance.
// ---------------------------------------------------------------------------
function renderStatus() {
  const runs = activeRuns();
  let status;
  let text;
  if (runs.length) {
    status = runs.every((r) => r.status === 'stopping') ? 'stopping' : 'running';
    const what = runs.map((r) => `${(r.plugins || []).join(', ')} ${percentText(runPercent(r))}`);
    text = `${status} — ${runs.length === 1 ? '1 run' : `${runs.length} runs`}: ${what.join(' · ')}`;
  } else if (state.lastRun) {
    status = 'idle';
    text = `idle — last run ${state.lastRun.status} ${clock(finishedAt(state.lastRun))}`;
  } else if (state.latestHistoryRun) {
    const row = state.latestHistoryRun;
    status = 'idle';
    text = `idle — last run ${row.status} ${clock(row.completed_at || row.updated_at)}`;
  } else {
    status = 'idle';
    text = 'idle — no runs yet';
  }
  const node = $('#status');
  node.textContent = text;
  node.dataset.status = status;
  document.title = runs.length ? `preheat · ${status} ${percentText(runPercent(runs[0]))}` : 'preheat · idle';
}

// ---------------------------------------------------------------------------
// Progress card: the current run (or the last one when idle).
// ---------------------------------------------------------------------------
function renderProgress() {
  const view = currentView();
  const card = $('#progress');
  if (!view) {
    card.dataset.state = 'none';
    return;
  }
  const percent = Math.max(0, Math.min(100, view.percent));
  card.dataset.runId = view.runId;
  card.dataset.state = view.state;
  card.dataset.percent = String(view.percent);
  card.dataset.status = view.status || view.state;
  $('#progress-title').textContent = view.title;
  $('#progress-fill').style.width = `${percent}%`;
  $('#progress-bar').setAttribute('aria-valuenow', percent.toFixed(1));
  $('#progress-bar').dataset.totalKnown = String(view.totalKnown);
  $('#progress-percent').textContent = percentText(view.percent);
  $('#progress-counts').textContent = `${num(view.completed)} / ${view.totalKnown ? '' : '≥'}${num(view.total)}`;
  $('#progress-success').textContent = num(view.success);
  $('#progress-failed').textContent = num(view.failed);
  $('#progress-failed').classList.toggle('bad', view.failed > 0);
  $('#progress-rate').textContent = typeof view.rate === 'number' ? view.rate.toFixed(1) : '–';
  $('#progress-batch').textContent = view.batch;
  $('#progress-eta').textContent = view.eta;
  $('#progress-problem').hidden = !view.problem;
  $('#progress-problem').textContent = view.problem || '';

  // Further active runs (different plugins run side by side): one line each.
  const others = activeRuns().slice(1);
  $('#other-runs').replaceChildren(
    ...others.map((r) =>
      el(
        'li',
        { 'data-run-id': r.run_id },
        `run ${shortId(r.run_id)} · ${(r.plugins || []).join(', ')} · ${r.status} · `,
        el('strong', {}, percentText(runPercent(r))),
        ` (${num(r.progress?.completed)} / ${num(r.progress?.total_items)})`,
      ),
    ),
  );
}

// ---------------------------------------------------------------------------
// Per-plugin outcome counts and recent errors of the current (or last) run.
// ---------------------------------------------------------------------------
function renderPluginsAndErrors() {
  const view = currentView();
  $('#plugins-run').textContent = view ? `run ${shortId(view.runId)}` : '';
  $('#errors-run').textContent = view ? `run ${shortId(view.runId)}` : '';
  const pluginRows = (view?.perPlugin || []).map(([name, c]) =>
    el(
      'tr',
      { 'data-plugin': name },
      el('td', {}, name),
      numCell(c.enumerated),
      numCell(c.written),
      numCell(c.skipped_fresh),
      numCell(c.skipped_by_plugin),
      numCell(c.invalid, true),
      numCell(c.failed, true),
      numCell(c.abandoned, true),
    ),
  );
  fillTable('#plugins', pluginRows, 'no run yet');

  const errors = (view?.errors || []).slice(-MAX_ERRORS).reverse();
  const errorRows = errors.map((e) =>
    el(
      'tr',
      { 'data-plugin': e.plugin },
      el('td', {}, e.plugin),
      el('td', { class: 'key' }, e.key),
      el('td', {}, e.error),
      el('td', { class: 'num' }, num(e.retries)),
    ),
  );
  fillTable('#errors', errorRows, 'no errors');
}

function render() {
  renderStatus();
  renderProgress();
  renderPluginsAndErrors();
}

// ---------------------------------------------------------------------------
// keys/s over time: from the growth of `completed` between successive
// progress events of each run, summed over runs into time buckets, drawn as
// an inline SVG line.
// ---------------------------------------------------------------------------
function recordCompleted(runId, completed) {
  const now = Date.now();
  const prev = rate.last.get(runId);
  rate.last.set(runId, { completed, at: now });
  if (!prev || now - prev.at > RATE_MAX_GAP_MS || completed < prev.completed) return;
  const bucket = Math.floor(now / RATE_BUCKET_MS);
  rate.buckets.set(bucket, (rate.buckets.get(bucket) || 0) + (completed - prev.completed));
}

function drawChart() {
  const svgNS = 'http://www.w3.org/2000/svg';
  const [width, height] = [600, 120];
  const current = Math.floor(Date.now() / RATE_BUCKET_MS);
  const count = RATE_WINDOW_MS / RATE_BUCKET_MS;
  for (const bucket of rate.buckets.keys()) if (bucket < current - count) rate.buckets.delete(bucket);
  // Complete buckets only: the current one is still filling up.
  const values = [];
  for (let i = count; i >= 1; i -= 1) values.push((rate.buckets.get(current - i) || 0) / (RATE_BUCKET_MS / 1000));
  const peak = Math.max(0, ...values);
  const top = peak > 0 ? peak * 1.15 : 1;
  const points = values.map((v, i) => [(i / (count - 1)) * width, height - 2 - (v / top) * (height - 4)]);
  const line = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');

  const area = document.createElementNS(svgNS, 'polygon');
  area.setAttribute('class', 'area');
  area.setAttribute('points', `0,${height} ${line} ${width},${height}`);
  const polyline = document.createElementNS(svgNS, 'polyline');
  polyline.setAttribute('class', 'line');
  polyline.setAttribute('points', line);
  $('#rate-chart').replaceChildren(area, polyline);
  $('#rate-chart').dataset.peak = String(peak);
  $('#rate-now').textContent = num(Math.round(values[values.length - 1]));
  $('#rate-peak').textContent = num(Math.round(peak));
}

// ---------------------------------------------------------------------------
// Run history (GET runs): whole runs, with their plugins' names.
// ---------------------------------------------------------------------------
async function refreshHistory() {
  let rows;
  try {
    // Per-plugin rows come with each run: ask for enough rows to show MAX_HISTORY_RUNS runs.
    rows = (await getJSON(`${API}/runs?limit=${MAX_HISTORY_RUNS * 3}`)).runs || [];
  } catch (error) {
    fillTable('#history', [], `could not load the run history: ${error.message}`);
    return;
  }
  // Plugin names: from per-plugin rows when the history has them, else from the events.
  const pluginsOf = new Map();
  for (const row of rows) {
    if (row.job_type === 'run') continue;
    pluginsOf.set(row.run_id, [...(pluginsOf.get(row.run_id) || []), row.job_type]);
  }
  for (const [runId, names] of state.pluginsOf) if (!pluginsOf.has(runId)) pluginsOf.set(runId, names);
  const runs = rows.filter((row) => row.job_type === 'run').slice(0, MAX_HISTORY_RUNS);
  state.latestHistoryRun = runs.find((row) => row.completed_at) || null;
  const tableRows = runs.map((row) => {
    const m = row.metadata || {};
    const took =
      typeof m.duration_ms === 'number'
        ? m.duration_ms
        : row.completed_at
          ? toDate(row.completed_at) - toDate(row.started_at)
          : null;
    return el(
      'tr',
      { 'data-run-id': row.run_id, 'data-status': row.status },
      el('td', { title: row.run_id, class: 'key' }, shortId(row.run_id)),
      el('td', {}, el('span', { class: `badge ${row.status}`, title: row.error_message }, row.status)),
      el('td', {}, row.strategy || '–'),
      el('td', {}, (pluginsOf.get(row.run_id) || []).join(', ') || '–'),
      el('td', {}, when(row.started_at)),
      el('td', { class: 'num' }, row.completed_at ? duration(took) : 'running…'),
      numCell(m.enumerated),
      numCell(m.written),
      numCell('failed' in m || 'invalid' in m ? sumOf(m, ['failed', 'invalid']) : null, true),
    );
  });
  fillTable('#history', tableRows, 'no runs recorded yet');
  renderStatus();
  // The job store may record a run's end a moment after its run_finished
  // event: look again shortly while a finished run still reads as running.
  const lagging = runs.filter((row) => row.status === 'running' && state.finished.has(row.run_id));
  if (lagging.length && historyRetries < 20) {
    historyRetries += 1;
    setTimeout(refreshHistory, 500);
  } else if (!lagging.length) {
    historyRetries = 0;
  }
}

// ---------------------------------------------------------------------------
// Schedules (GET schedule): cron, next fire time (with a live countdown).
// ---------------------------------------------------------------------------
async function refreshSchedule() {
  let body;
  try {
    body = await getJSON(`${API}/schedule`);
  } catch (error) {
    fillTable('#schedule', [], `could not load the schedules: ${error.message}`);
    return;
  }
  renderSchedule(body);
}

// Draws GET schedule's answer, or a `schedules` event's data (sent when they change).
function renderSchedule(body) {
  const rows = (body.schedules || []).map((s) => {
    const cron = s.cron
      ? [el('code', {}, s.cron), s.jitter ? el('small', {}, ` +≤${s.jitter}`) : '']
      : [el('span', { class: 'muted' }, 'on demand')];
    return el(
      'tr',
      { 'data-plugin': s.plugin, class: s.enabled === false ? 'disabled' : null },
      el('td', {}, s.plugin, s.source === 'api' ? el('small', { class: 'tag' }, 'api') : ''),
      el(
        'td',
        {},
        ...cron,
        s.enabled === false ? el('small', {}, ' (disabled)') : '',
        s.description ? el('div', { class: 'muted small' }, s.description) : '',
      ),
      el(
        'td',
        { class: 'next-fire', 'data-next-fire': s.next_fire },
        when(s.next_fire),
        ' ',
        el('small', { 'data-relative': s.next_fire }, relative(s.next_fire)),
      ),
      el('td', {}, when(s.last_fired)),
    );
  });
  fillTable('#schedule', rows, 'no plugins');
  if (!body.suggestions) return; // a `schedules` event carries no suggestions: keep the last ones
  $('#schedule-suggestions').replaceChildren(
    ...body.suggestions.map((s) =>
      el('li', {}, 'suggestion: ', typeof s === 'string' ? s : [s.plugin, s.cron, s.why || s.reason].filter(Boolean).join(' · ') || JSON.stringify(s)),
    ),
  );
}

// ---------------------------------------------------------------------------
// Hot keys (GET hot-data): the hottest keys, or why there are none.
// ---------------------------------------------------------------------------
async function refreshHotData() {
  let body;
  try {
    body = await getJSON(`${API}/hot-data`);
  } catch (error) {
    body = { keys: [], reason: `could not load hot keys: ${error.message}` };
  }
  const keys = body.keys || [];
  $('#hot-keys-window').textContent = body.window ? `last ${body.window}` : '';
  const reason = $('#hot-keys-reason');
  reason.hidden = keys.length > 0;
  reason.textContent = keys.length ? '' : body.reason || 'no hot keys';
  $('#hot-keys table').hidden = keys.length === 0;
  fillTable(
    '#hot-keys',
    keys.map((k) =>
      el(
        'tr',
        { 'data-key': k.key },
        el('td', { class: 'key' }, k.key),
        numCell(k.accesses),
        numCell(k.misses),
        el('td', {}, String(k.priority ?? '–')),
      ),
    ),
    'none',
  );
}

// ---------------------------------------------------------------------------
// Effectiveness (GET stats): hit rate around runs, coverage of the hot set,
// misses avoided and latency saved; "–" where nothing was measured yet.
// ---------------------------------------------------------------------------
const percent = (x) => (typeof x === 'number' ? `${(x * 100).toFixed(1)}%` : '–');
const number = (x, digits = 0) => (typeof x === 'number' ? x.toFixed(digits) : '–');

async function refreshStats() {
  let body;
  try {
    body = await getJSON(`${API}/stats`);
  } catch (error) {
    $('#effect-note').textContent = `could not load stats: ${error.message}`;
    return;
  }
  const e = body.effectiveness || {};
  const c = body.cost_benefit || {};
  const set = (id, text) => {
    $(id).textContent = text;
  };
  set('#effect-before', percent(e.hit_rate_before));
  set('#effect-after', percent(e.hit_rate_after));
  set('#effect-improvement', typeof e.improvement === 'number' ? `${e.improvement >= 0 ? '+' : ''}${(e.improvement * 100).toFixed(1)} pts` : '–');
  set('#effect-coverage', e.coverage ? `${percent(e.coverage.fraction)} of ${e.coverage.hot_keys}` : '–');
  set('#effect-24h', percent(e.hit_rate_last_24h));
  set('#effect-avoided', number(c.misses_avoided));
  set('#effect-saved', typeof c.estimated_latency_saved_ms === 'number' ? `${number(c.estimated_latency_saved_ms)} ms` : '–');
  set('#effect-warmed', number(c.keys_warmed));
  $('#effect-note').textContent = e.reason || (e.measured_runs ? `${e.measured_runs} runs measured, ${e.window} before/after` : 'no run measured yet: needs access events before and after a run');
}

function refreshAll() {
  refreshHistory();
  refreshSchedule();
  refreshHotData();
  refreshStats();
}

// ---------------------------------------------------------------------------
// Live updates: the SSE stream. `hello` carries the whole status (on every
// connect and reconnect), `progress` one active run, `run_finished` its end,
// `schedules` the schedules after they changed.
// ---------------------------------------------------------------------------
function applyStatus(status) {
  let runs = Array.isArray(status.runs) ? status.runs : [];
  if (!runs.length && status.run_id && status.status !== 'idle') runs = [status];
  state.active = new Map(runs.filter((r) => !state.finished.has(r.run_id)).map((r) => [r.run_id, r]));
  if (status.last_run && isLater(status.last_run, state.lastRun)) state.lastRun = status.last_run;
  for (const run of runs) state.pluginsOf.set(run.run_id, run.plugins || []);
  if (status.last_run) state.pluginsOf.set(status.last_run.run_id, (status.last_run.plugins || []).map((p) => p.name));
  for (const run of runs) recordCompleted(run.run_id, run.progress?.completed ?? 0);
  render();
}

function onProgress(run) {
  if (!run || !run.run_id || state.finished.has(run.run_id)) return;
  const isNew = !state.active.has(run.run_id);
  state.pluginsOf.set(run.run_id, run.plugins || []);
  recordCompleted(run.run_id, run.progress?.completed ?? 0);
  state.active.set(run.run_id, run);
  render();
  // A run we had not seen: its "running" row is in the history now.
  if (isNew) refreshHistory();
}

function onFinished(finished) {
  state.finished.add(finished.run_id);
  state.active.delete(finished.run_id);
  state.pluginsOf.set(finished.run_id, (finished.plugins || []).map((p) => p.name));
  if (rate.last.has(finished.run_id)) recordCompleted(finished.run_id, sumOf(finished.totals, OUTCOMES));
  rate.last.delete(finished.run_id);
  state.lastRun = finished;
  render();
  refreshHistory();
  refreshSchedule();
}

function setConnection(connection, text) {
  const node = $('#connection');
  node.dataset.state = connection;
  node.textContent = text;
}

// Wraps an event handler: a malformed event is logged, never fatal.
const handler = (fn) => (event) => {
  try {
    fn(JSON.parse(event.data));
  } catch (error) {
    console.error(`preheat dashboard: bad ${event.type} event`, error, event.data);
  }
};

function connect() {
  const source = new EventSource(`${API}/events`);
  setConnection('connecting', 'connecting…');
  source.onopen = () => setConnection('live', 'live');
  source.onerror = () => {
    // EventSource retries by itself while CONNECTING; once CLOSED (an error
    // status, a wrong content type) it gives up, so start a new one.
    if (source.readyState === EventSource.CLOSED) {
      setConnection('offline', 'offline — retrying');
      setTimeout(connect, 3000);
    } else {
      setConnection('reconnecting', 'reconnecting…');
    }
  };
  source.addEventListener(
    'hello',
    handler((status) => {
      applyStatus(status);
      refreshAll();
    }),
  );
  source.addEventListener('progress', handler(onProgress));
  source.addEventListener('run_finished', handler(onFinished));
  source.addEventListener('schedules', handler(renderSchedule));
}

// ---------------------------------------------------------------------------
// Start: the status once (the page is useful even before the stream opens),
// the stream, a ticker for the chart and countdowns, and a slow refresh of
// what changes without events (schedules fire, hot keys move, other
// processes record runs).
// ---------------------------------------------------------------------------
function tick() {
  drawChart();
  for (const node of document.querySelectorAll('[data-relative]')) node.textContent = relative(node.dataset.relative);
}

document.addEventListener('DOMContentLoaded', () => {
  getJSON(`${API}/status`)
    .then(applyStatus)
    .catch((error) => console.error('preheat dashboard: status', error));
  connect();
  refreshAll();
  tick();
  setInterval(tick, 1000);
  setInterval(refreshAll, SLOW_REFRESH_MS);
});
