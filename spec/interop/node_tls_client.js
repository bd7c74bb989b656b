// TLS peer for spec/tls_spec.lua: Node's ws package over wss:// against a
// wslua server whose certificate the spec's CA signed.
//
// usage: node node_tls_client.js URL CA   echo (text and binary, 0 B to
//                                         1 MiB), permessage-deflate offered
//                                         but not negotiated, a clean 1000
//        node node_tls_client.js URL CA deflate
//                                         the same echo (and JSON chat
//                                         lines) with permessage-deflate
//                                         negotiated; prints the payload
//                                         bytes the server sent
//
// Prints one line per check and "NODE TLS OK" at the end; on any mismatch
// prints "FAIL: ..." and exits 1. Everything is bounded in time.
"use strict";

const fs = require("fs");
const WebSocket = require("ws");

const SIZES = [0, 125, 126, 65536, 1024 * 1024];
const STEP_TIMEOUT = 20000;
const TOTAL_TIMEOUT = 50000;

class Mismatch extends Error {}

function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Mismatch("timed out: " + what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Incoming messages and the close queue up for next().
function inbox(ws) {
  const items = [];
  let waiter = null;
  const push = (item) => {
    items.push(item);
    if (waiter) waiter();
  };
  ws.on("message", (data, isBinary) => push({ data, isBinary }));
  ws.on("close", (code) => push({ close: code }));
  return async (what) => {
    while (items.length === 0)
      await within(STEP_TIMEOUT, what, new Promise((r) => (waiter = r)));
    const item = items.shift();
    check(item.close === undefined, what + ": closed with " + item.close);
    return item;
  };
}

// JSON chat lines of exactly size bytes: what compression is for.
function compressible(size) {
  const lines = [];
  let n = 0;
  for (let i = 1; n < size; i++) {
    const line = JSON.stringify({ id: i, user: "guest" + (i % 13),
      text: "hello number " + ((i * 7) % 101) }) + "\n";
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join("")).subarray(0, size);
}

async function main(url, ca, deflate) {
  // ws offers permessage-deflate by default (perMessageDeflate: true).
  const ws = new WebSocket(url, { ca: fs.readFileSync(ca), maxPayload: 0 });
  ws.on("upgrade", (res) => {
    ws.agreed = res.headers["sec-websocket-extensions"];
  });
  await within(STEP_TIMEOUT, "opening " + url, new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  }));
  const next = inbox(ws);
  console.log("ok " + ws._socket.getProtocol());
  if (deflate) {
    check(ws.agreed && ws.agreed.startsWith("permessage-deflate"),
      "permessage-deflate was not negotiated (" + ws.agreed + ")");
    check(ws.extensions === "permessage-deflate",
      "extensions in use: '" + ws.extensions + "'");
    console.log("ok negotiated " + ws.agreed);
  } else {
    check(ws.extensions === "", "permessage-deflate was negotiated (" +
      ws.extensions + "): update tls_spec.lua now that compression is in");
    console.log("ok permessage-deflate offered, not negotiated");
  }
  let seed = 6455;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  let payload = 0;
  const echo = async (buf, binary, label) => {
    const what = label + (binary ? "binary " : "text ") + buf.length + " B";
    ws.send(buf, { binary });
    const got = await next(what);
    check(got.isBinary === binary && buf.equals(got.data),
      what + " came back as " + got.data.length + " B");
    console.log("ok echo " + what);
    payload += buf.length;
  };
  for (const n of SIZES) {
    for (const binary of [false, true]) {
      const buf = Buffer.alloc(n);
      for (let i = 0; i < n; i++) buf[i] = binary ? rand() & 0xff : 97 + (rand() % 26);
      await echo(buf, binary, "");
      if (deflate) await echo(compressible(n), binary, "compressible ");
    }
  }
  const closed = within(STEP_TIMEOUT, "close", new Promise((resolve) =>
    ws.once("close", resolve)));
  ws.close(1000, "bye");
  const code = await closed;
  check(code === 1000, "close code " + code);
  console.log("ok close 1000");
  if (deflate) console.log("payload bytes echoed " + payload);
}

const args = process.argv.slice(2);
if (args.length !== 2 && !(args.length === 3 && args[2] === "deflate")) {
  console.error("usage: node node_tls_client.js URL CA [deflate]");
  process.exit(2);
}
within(TOTAL_TIMEOUT, "the whole run", main(args[0], args[1], args[2] === "deflate"))
  .then(() => {
    console.log("NODE TLS OK");
    process.exit(0);
  })
  .catch((e) => {
    console.log("FAIL: " + (e && e.message ? e.message : e));
    process.exit(1);
  });
