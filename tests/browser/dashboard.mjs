#!/usr/bin/env node
// Drives Debian's headless Chromium (/usr/bin/chromium, through playwright-core;
// no browser download) against a running `preheat serve`:
//
//   node dashboard.mjs BASE_URL SCREENSHOT_PATH [TOKEN]
//
// Opens the dashboard, waits for its live stream, starts a run of the
// `synthetic` plugin (POST /cache/warming/start from the page, with the bearer
// TOKEN when given), then waits until the page shows that run in progress, at
// 100% and completed, and as a completed row in the run history. Saves a
// full-page screenshot to SCREENSHOT_PATH (also on failure, when the page is
// open) and prints one line of JSON: {"ok":true,...} and exit 0, or
// {"ok":false,"error":...} and exit 1. Everything must happen within
// PREHEAT_BROWSER_TIMEOUT_MS (default 60000).
//
// Environment: PREHEAT_CHROMIUM (default /usr/bin/chromium),
// PREHEAT_DASHBOARD_PLUGIN (default "synthetic"), PREHEAT_BROWSER_TIMEOUT_MS.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const [baseArg, screenshotPath, token] = process.argv.slice(2);
if (!baseArg || !screenshotPath) {
  console.error('usage: node dashboard.mjs BASE_URL SCREENSHOT_PATH [TOKEN]');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const executablePath = process.env.PREHEAT_CHROMIUM || '/usr/bin/chromium';
const pluginName = process.env.PREHEAT_DASHBOARD_PLUGIN || 'synthetic';
const timeoutMs = Number(process.env.PREHEAT_BROWSER_TIMEOUT_MS || 60000);
const deadline = Date.now() + timeoutMs;

let step = 'starting';
let context = null;
let page = null;
const profile = mkdtempSync(join(tmpdir(), 'preheat-chromium-'));
const pageErrors = [];

// Time left for the next wait (at least 1 ms, so a spent budget fails at once).
const remaining = () => Math.max(1, deadline - Date.now());

async function screenshot() {
  mkdirSync(dirname(screenshotPath), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });
}

async function finish(result, code) {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  console.log(JSON.stringify(result));
  process.exit(code);
}

async function fail(message) {
  const detail = String(message).replace(/\u001b\[[0-9;]*m/g, '').trim();
  const error = `dashboard test failed while ${step}: ${detail.split('\n')[0]}`;
  console.error(`dashboard test failed while ${step}: ${detail}`);
  let shot = null;
  if (page) {
    shot = await Promise.race([screenshot().then(() => screenshotPath), new Promise((r) => setTimeout(r, 5000))]).catch(
      () => null,
    );
    const status = await page.locator('#status').textContent({ timeout: 1000 }).catch(() => null);
    if (status) console.error(`page status line: ${status}`);
  }
  await finish({ ok: false, error, page_errors: pageErrors, screenshot: shot ?? null }, 1);
}

// The whole test is bounded, whatever hangs.
const watchdog = setTimeout(() => {
  fail(`timed out after ${timeoutMs} ms`);
}, timeoutMs + 2000);

// Waits for a condition evaluated in the page; `what` names it in the error.
async function waitInPage(what, fn, arg) {
  step = `waiting for ${what}`;
  try {
    await page.waitForFunction(fn, arg, { timeout: remaining(), polling: 100 });
  } catch (error) {
    throw new Error(`not within the ${timeoutMs} ms limit (${error.message.split('\n')[0]})`);
  }
}

try {
  step = `launching ${executablePath}`;
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
    timeout: remaining(),
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (error) => pageErrors.push(String(error)));

  step = `opening ${base}/`;
  const response = await page.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: remaining() });
  if (!response || !response.ok()) throw new Error(`GET / answered ${response ? response.status() : 'nothing'}`);

  await waitInPage('the live stream to open (#connection[data-state=live])', () => {
    return document.querySelector('#connection')?.dataset.state === 'live';
  });

  // Record every state the progress card goes through, to show the page
  // updated live (from progress events) and not only at the end.
  await page.evaluate(() => {
    const card = document.querySelector('#progress');
    window.__preheatSamples = [];
    const sample = () =>
      window.__preheatSamples.push({
        run: card.dataset.runId,
        state: card.dataset.state,
        percent: document.querySelector('#progress-percent').textContent,
      });
    new MutationObserver(sample).observe(card, { attributes: true, subtree: true, childList: true, characterData: true });
  });

  step = 'starting a run (POST /cache/warming/start)';
  const started = await page.evaluate(
    async ({ token, plugin }) => {
      const headers = { 'Content-Type': 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const r = await fetch('/cache/warming/start', { method: 'POST', headers, body: JSON.stringify({ plugins: [plugin] }) });
      return { status: r.status, body: await r.text() };
    },
    { token: token || null, plugin: pluginName },
  );
  if (started.status !== 202) throw new Error(`expected 202, got ${started.status}: ${started.body}`);
  let runId;
  try {
    runId = JSON.parse(started.body).run_id;
  } catch {
    throw new Error(`the answer is not JSON: ${started.body}`);
  }
  if (!runId) throw new Error(`no run_id in ${started.body}`);

  await waitInPage(
    `the progress card to show run ${runId} at 100%, finished`,
    (id) => {
      const card = document.querySelector('#progress');
      return (
        card.dataset.runId === id &&
        card.dataset.state === 'finished' &&
        document.querySelector('#progress-percent').textContent === '100%'
      );
    },
    runId,
  );
  const cardStatus = await page.locator('#progress').getAttribute('data-status');
  if (cardStatus !== 'completed') throw new Error(`run ${runId} finished as ${cardStatus}, not completed`);

  await waitInPage(
    `a completed history row for run ${runId} (#history tbody tr[data-run-id])`,
    (id) =>
      [...document.querySelectorAll('#history tbody tr')].some(
        (tr) => tr.dataset.runId === id && tr.dataset.status === 'completed',
      ),
    runId,
  );

  await waitInPage('the status line to say idle (#status[data-status=idle])', () => {
    const s = document.querySelector('#status');
    return s.dataset.status === 'idle' && s.textContent.startsWith('idle — last run completed');
  });

  // The keys/s chart draws complete 2 s buckets: give it one to show the run.
  await waitInPage('the keys/s chart to show the run (#rate-chart[data-peak] > 0)', () => {
    return Number(document.querySelector('#rate-chart').dataset.peak) > 0;
  });

  step = 'reading the page';
  const seen = await page.evaluate(
    (id) => window.__preheatSamples.filter((s) => s.run === id).map((s) => `${s.state} ${s.percent}`),
    runId,
  );
  const live = [...new Set(seen.filter((s) => s.startsWith('running ')))];
  if (!live.length) {
    throw new Error(`the page never showed run ${runId} in progress before it finished (states seen: ${seen.join(', ') || 'none'})`);
  }
  const pluginRow = await page.evaluate((name) => {
    const tr = document.querySelector(`#plugins tbody tr[data-plugin="${CSS.escape(name)}"]`);
    return tr ? [...tr.cells].map((td) => td.textContent) : null;
  }, pluginName);
  if (!pluginRow) throw new Error(`no row for plugin ${pluginName} in #plugins`);
  const historyRow = await page.evaluate(
    (id) =>
      [...document.querySelectorAll('#history tbody tr')]
        .find((tr) => tr.dataset.runId === id)
        .innerText.replace(/\s+/g, ' ')
        .trim(),
    runId,
  );
  // The effectiveness card counts the keys the run warmed (GET stats, refreshed after run_finished).
  await waitInPage('the effectiveness card to count warmed keys', () => {
    const warmed = document.querySelector('#effect-warmed');
    return warmed && /^[1-9][0-9]*$/.test(warmed.textContent);
  });
  const keysWarmed = await page.locator('#effect-warmed').textContent();
  const status = await page.locator('#status').textContent();
  if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join('; ')}`);

  step = `saving the screenshot to ${screenshotPath}`;
  await screenshot();
  await finish(
    {
      ok: true,
      run_id: runId,
      status,
      live_progress_seen: live,
      plugin_row: pluginRow,
      history_row: historyRow,
      keys_warmed: keysWarmed,
      screenshot: screenshotPath,
    },
    0,
  );
} catch (error) {
  await fail(error.message);
}
