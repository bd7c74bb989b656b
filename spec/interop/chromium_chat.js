// Interop peer for spec/interop_chromium_spec.lua: headless Chromium, driven
// by playwright-core, loads the chat page of examples/chat and talks to a
// second party (a Node `ws` client) through the server, both with
// permessage-deflate.
//
// usage: node chromium_chat.js http://127.0.0.1:PORT/ SCREENSHOT.png
//        node chromium_chat.js https://127.0.0.1:PORT/ SCREENSHOT.png CERT
//
// With CERT (the server's certificate, PEM, self-signed or from a test CA
// the party is given as CA too), the page comes over https:// and its socket
// over wss://: Chromium accepts the certificate whose public key CERT holds
// (--ignore-certificate-errors-spki-list, every other certificate error
// still counts), the party verifies it against CERT.
//
// Uses the system's Chromium (/usr/bin/chromium, or $CHROMIUM) and a fresh
// user data directory; never downloads a browser. Prints one line per check
// and "CHROMIUM INTEROP OK" at the end; on any failure prints "FAIL: ..." and
// exits 1. Everything is bounded in time; Chromium is gone when it exits.
"use strict";

const crypto = require("crypto");
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

// The base64 SHA-256 of a PEM certificate's public key (SPKI), as
// --ignore-certificate-errors-spki-list wants it.
function spkiHash(pem) {
  const der = new crypto.X509Certificate(pem).publicKey
    .export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(der).digest("base64");
}

// The second party: a ws client whose text messages queue up for expect().
function party(url, ca) {
  const ws = new WebSocket(url, {
    handshakeTimeout: STEP_TIMEOUT,
    perMessageDeflate: { threshold: 0 },
    ...(ca ? { ca } : {}),
  });
  const seen = [];
  const waiters = [];
  ws.on("message", (data) => {
    seen.push(data.toString());
    for (const w of waiters.splice(0)) w();
  });
  ws.on("close", () => {
    for (const w of waiters.splice(0)) w();
  });
  ws.on("error", () => {});
  // Resolves with the first message matching re, waiting for it.
  ws.expect = async (re, what) => {
    const deadline = Date.now() + STEP_TIMEOUT;
    for (;;) {
      const hit = seen.find((m) => re.test(m));
      if (hit) return hit;
      check(ws.readyState === WebSocket.OPEN, "party closed waiting for " +
        what);
      const left = deadline - Date.now();
      check(left > 0, "timed out: party waiting for " + what + "; got " +
        JSON.stringify(seen));
      await within(left, "party waiting for " + what,
        new Promise((r) => waiters.push(r)));
    }
  };
  return within(STEP_TIMEOUT, "party connecting to " + url, new Promise(
    (resolve, reject) => {
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    }));
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

async function chat(pageUrl, screenshot, cert, state) {
  check(fs.existsSync(CHROMIUM), CHROMIUM + " is missing (apt-get install " +
    "chromium, or scripts/deps.sh test)");
  const pem = cert ? fs.readFileSync(cert) : null;
  state.context = await chromium.launchPersistentContext(state.dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: pem ? ARGS.concat("--ignore-certificate-errors-spki-list=" +
      spkiHash(pem)) : ARGS,
    timeout: 20000,
  });
  const page = state.context.pages()[0] || await state.context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));

  const response = await page.goto(pageUrl);
  check(response && response.ok(), "page load: " +
    (response ? response.status() : "no response"));
  if (pem) {
    const tls = await response.securityDetails();
    check(tls && tls.protocol, "the page did not come over TLS");
    console.log("ok page over " + tls.protocol + " from " + tls.subjectName);
  }
  await page.waitForFunction(() =>
    document.getElementById("status").textContent === "connected");
  console.log("ok page loaded and connected");
  // The page's socket (a global of chat.js): the chat endpoint compresses,
  // and Chromium offers permessage-deflate.
  const socketUrl = await page.evaluate(() => ws.url);
  check(socketUrl.startsWith(pem ? "wss://" : "ws://"),
    "the page's socket is " + socketUrl);
  console.log("ok page socket " + socketUrl);
  const extensions = await page.evaluate(() => ws.extensions);
  check(/^permessage-deflate\b/.test(extensions),
    "the page's WebSocket negotiated '" + extensions + "', not permessage-deflate");
  console.log("ok page negotiated " + extensions);
  await page.waitForFunction(() =>
    /Heyho! You are guest\d+\./.test(document.getElementById("log").innerText));
  const logText = () => page.$eval("#log", (el) => el.innerText);
  const me = (await logText()).match(/Heyho! You are (guest\d+)\./)[1];
  console.log("ok page greeted as " + me);

  const wsUrl = pageUrl.replace(/^http/, "ws").replace(/\/?$/, "/ws");
  const other = await party(wsUrl, pem);
  check(other.extensions === "permessage-deflate",
    "the party negotiated '" + other.extensions + "'");
  const greeting = await other.expect(/^Heyho! You are guest\d+\.$/,
    "greeting");
  const them = greeting.match(/(guest\d+)/)[1];

  const token = Math.random().toString(36).slice(2, 10);
  const fromParty = "hello from node " + token + " \u00e9\u20ac\u{1F600}";
  other.send(fromParty);
  const wanted = them + ": " + fromParty;
  await page.waitForFunction((line) =>
    Array.from(document.querySelectorAll("#log p"))
      .some((p) => p.textContent === line), wanted);
  console.log("ok page shows the broadcast: " + wanted);

  const fromPage = "hello from chromium " + token;
  await page.fill("#text", fromPage);
  await page.press("#text", "Enter");
  const heard = await other.expect(
    new RegExp("^" + me + ": hello from chromium " + token + "$"),
    "the page's message");
  console.log("ok party received: " + heard);
  check((await page.inputValue("#text")) === "", "the form was not sent");

  await page.screenshot({ path: screenshot, timeout: STEP_TIMEOUT });
  console.log("screenshot: " + screenshot);
  check(errors.length === 0, "page errors: " + errors.join("; "));
  other.close(1000);
}

async function main() {
  const [pageUrl, screenshot, cert] = process.argv.slice(2);
  if (!pageUrl || !screenshot) {
    console.error("usage: node chromium_chat.js PAGE_URL SCREENSHOT.png [CERT]");
    return 2;
  }
  const state = { dir: fs.mkdtempSync(path.join(os.tmpdir(), "wslua-chromium-")) };
  let code = 0;
  try {
    await within(TOTAL_TIMEOUT, "the whole run",
      chat(pageUrl, path.resolve(screenshot), cert, state));
  } catch (err) {
    console.log("FAIL: " + (err instanceof Failure ? err.message :
      (err.message || err).toString().split("\n")[0]));
    code = 1;
  }
  if (state.context) {
    await within(STEP_TIMEOUT, "closing Chromium", state.context.close())
      .catch((err) => console.log("closing Chromium: " + err.message));
  }
  for (const pid of leftovers(state.dir)) {
    console.log("killing leftover Chromium process " + pid);
    try {
      process.kill(pid, "SIGKILL");
    } catch (_) {
      // already gone
    }
  }
  fs.rmSync(state.dir, { recursive: true, force: true });
  if (code === 0) console.log("CHROMIUM INTEROP OK");
  return code;
}

main().then((code) => process.exit(code));
