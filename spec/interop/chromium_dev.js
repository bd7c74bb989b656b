// The dev console (wslua --dev) in headless Chromium, driven by
// playwright-core, for spec/dev_spec.lua: the page lists the echo example's
// routes, connects to "/" with a click, sends text and JSON and shows the
// echoes, and shows live events: another client's session (a Node `ws`
// client on /deflate) and a reload (SIGHUP to the server), after which its
// own connection still echoes.
//
// usage: node chromium_dev.js http://127.0.0.1:PORT SERVER_PID SCREENSHOT.png
//
// Uses the system's Chromium (/usr/bin/chromium, or $CHROMIUM) and a fresh
// user data directory; never downloads a browser. Prints one line per check
// and "DEV CONSOLE OK" at the end; on any failure prints "FAIL: ..." and
// exits 1. Everything is bounded in time; Chromium is gone when it exits.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const WebSocket = require("ws");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT = 10000; // ms for one step
const TOTAL_TIMEOUT = 50000; // ms for the whole run
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

class Failure extends Error {}

function check(cond, what) {
  if (!cond) throw new Failure(what);
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure("timed out: " + what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Processes whose command line names our user data directory: Chromium and
// its helpers, which close() should already have ended.
function leftovers(dir) {
  const pids = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = fs.readFileSync("/proc/" + name + "/cmdline", "utf8");
      if (cmd.includes(dir)) pids.push(Number(name));
    } catch (_) {
      // gone meanwhile
    }
  }
  return pids;
}

// Another client: opens a session on url, sends one message, waits for
// its echo and closes with 1000.
function party(url, text) {
  return within(STEP_TIMEOUT, "the other client on " + url, new Promise(
    (resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: STEP_TIMEOUT });
      ws.on("open", () => ws.send(text));
      ws.on("message", (data) => {
        check(data.toString() === text, "the other client got " + data);
        ws.close(1000);
      });
      ws.on("close", (code) => resolve(code));
      ws.on("error", reject);
    }));
}

async function run(base, pid, screenshot, state) {
  check(fs.existsSync(CHROMIUM), CHROMIUM + " is missing (apt-get install " +
    "chromium, or scripts/deps.sh test)");
  state.context = await chromium.launchPersistentContext(state.dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 20000,
    viewport: { width: 1280, height: 860 },
  });
  const page = state.context.pages()[0] || await state.context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));

  const response = await page.goto(base + "/_wslua");
  check(response && response.ok(), "page load: " +
    (response ? response.status() : "no response"));
  await page.waitForFunction(() =>
    document.getElementById("events-status").textContent === "live");
  console.log("ok console loaded, events socket live");

  const rows = await page.$$eval("#routes tr", (trs) =>
    trs.map((tr) => tr.dataset.path + " " + tr.dataset.kind));
  check(rows.join(",") === "/ websocket,/deflate websocket",
    "the routes listed: " + JSON.stringify(rows));
  console.log("ok routes listed: " + rows.join(", "));

  // Connect to the echo route with a click, send text, see the echo.
  await page.click('tr[data-path="/"] button.connect');
  const card = '.conn[data-path="/"]';
  await page.waitForSelector(card + " .state.open");
  console.log("ok connected to / from the page");
  const token = Math.random().toString(36).slice(2, 10);
  const text = "hello from the dev console " + token + " \u00e9\u20ac";
  await page.fill(card + " textarea.message", text);
  await page.click(card + " button.send");
  await page.waitForFunction(([sel, t]) =>
    Array.from(document.querySelectorAll(sel + " .log li.in"))
      .some((li) => li.textContent === t), [card, text]);
  console.log("ok echo shown: " + text);

  // JSON mode: sent compact, echoed back; text that is not JSON is refused.
  await page.selectOption(card + " select.mode", "json");
  await page.fill(card + " textarea.message", '{ "type": "ping", "n": [1, 2] }');
  await page.click(card + " button.send");
  await page.waitForFunction((sel) =>
    Array.from(document.querySelectorAll(sel + " .log li.in"))
      .some((li) => li.textContent === '{"type":"ping","n":[1,2]}'), card);
  console.log('ok JSON sent and echoed: {"type":"ping","n":[1,2]}');
  await page.fill(card + " textarea.message", "{oops");
  await page.click(card + " button.send");
  await page.waitForSelector(card + " .log li.error");
  console.log("ok text that is not JSON is refused in JSON mode");

  // Events: the page's own session, then another client's, open and close.
  await page.waitForSelector('#events li[data-type="open"][data-route="/"]');
  console.log("ok event: open on /");
  const code = await party(base.replace(/^http/, "ws") + "/deflate", "from node " + token);
  check(code === 1000, "the other client closed with " + code);
  await page.waitForSelector('#events li[data-type="open"][data-route="/deflate"]');
  await page.waitForFunction(() => Array.from(
    document.querySelectorAll('#events li[data-type="close"][data-route="/deflate"]'))
    .some((li) => / 1000 by client, 1 in \/ 1 out/.test(li.textContent)));
  console.log("ok events: open and close on /deflate (1000 by client, 1 in / 1 out)");
  await page.waitForFunction(() =>
    document.querySelector('tr[data-path="/"] .clients').textContent === "1");
  console.log("ok the route table counts the page's client on /");

  // A reload: the event shows, and the page's connection still echoes.
  process.kill(pid, "SIGHUP");
  await page.waitForFunction(() => Array.from(
    document.querySelectorAll('#events li[data-type="reload"]'))
    .some((li) => /#1/.test(li.textContent)));
  console.log("ok event: reload #1");
  await page.selectOption(card + " select.mode", "text");
  const after = "after the reload " + token;
  await page.fill(card + " textarea.message", after);
  await page.click(card + " button.send");
  await page.waitForFunction(([sel, t]) =>
    Array.from(document.querySelectorAll(sel + " .log li.in"))
      .some((li) => li.textContent === t), [card, after]);
  console.log("ok the connection survived the reload and still echoes");
  await page.waitForFunction(() => /reloads: 1/.test(
    document.getElementById("meta").textContent));

  await page.screenshot({ path: screenshot, timeout: STEP_TIMEOUT, fullPage: true });
  console.log("screenshot: " + screenshot);

  // Closing from the page: the session's close event says who closed.
  await page.click(card + " button.close");
  await page.waitForSelector(card + " .state.closed");
  await page.waitForFunction(() => Array.from(
    document.querySelectorAll('#events li[data-type="close"][data-route="/"]'))
    .some((li) => / 1000 by client/.test(li.textContent)));
  console.log("ok closed from the page: event close on / (1000 by client)");
  check(errors.length === 0, "page errors: " + errors.join("; "));
}

async function main() {
  const [base, pid, screenshot] = process.argv.slice(2);
  if (!base || !pid || !screenshot) {
    console.error("usage: node chromium_dev.js BASE_URL SERVER_PID SCREENSHOT.png");
    return 2;
  }
  const state = { dir: fs.mkdtempSync(path.join(os.tmpdir(), "wslua-chromium-")) };
  let code = 0;
  try {
    await within(TOTAL_TIMEOUT, "the whole run",
      run(base.replace(/\/$/, ""), Number(pid), path.resolve(screenshot), state));
  } catch (err) {
    console.log("FAIL: " + (err instanceof Failure ? err.message :
      (err.message || err).toString().split("\n")[0]));
    code = 1;
  }
  if (state.context) {
    await within(STEP_TIMEOUT, "closing Chromium", state.context.close())
      .catch((err) => console.log("closing Chromium: " + err.message));
  }
  for (const p of leftovers(state.dir)) {
    console.log("killing leftover Chromium process " + p);
    try {
      process.kill(p, "SIGKILL");
    } catch (_) {
      // already gone
    }
  }
  fs.rmSync(state.dir, { recursive: true, force: true });
  if (code === 0) console.log("DEV CONSOLE OK");
  return code;
}

main().then((code) => process.exit(code));
