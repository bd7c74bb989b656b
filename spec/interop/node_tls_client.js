// TLS peer for spec/tls_spec.lua: Node's ws package over wss:// against a
// wslua server whose certificate the spec's CA signed.
//
// usage: node node_tls_client.js URL CA   echo (text and binary, 0 B to
//                                         1 MiB), permessage-deflate offered
//                                         but not negotiated, a clean 1000
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

async function main(url, ca) {
  // ws offers permessage-deflate by default (perMessageDeflate: true).
  const ws = new WebSocket(url, { ca: fs.readFileSync(ca), maxPayload: 0 });
  await within(STEP_TIMEOUT, "opening " + url, new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  }));
  const next = inbox(ws);
  console.log("ok " + ws._socket.getProtocol());
  check(ws.extensions === "", "permessage-deflate was negotiated (" +
    ws.extensions + "): update tls_spec.lua now that compression is in");
  console.log("ok permessage-deflate offered, not negotiated");
  let seed = 6455;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (const size of SIZES) {
    for (const binary of [false, true]) {
      const buf = Buffer.alloc(size);
      for (let i = 0; i < size; i++) buf[i] = binary ? rand() & 0xff : 97 + (rand() % 26);
      const what = (binary ? "binary " : "text ") + size + " B";
      ws.send(buf, { binary });
      const got = await next(what);
      check(got.isBinary === binary && buf.equals(got.data),
        what + " came back as " + got.data.length + " B");
      console.log("ok echo " + what);
    }
  }
  const closed = within(STEP_TIMEOUT, "close", new Promise((resolve) =>
    ws.once("close", resolve)));
  ws.close(1000, "bye");
  const code = await closed;
  check(code === 1000, "close code " + code);
  console.log("ok close 1000");
}

if (process.argv.length !== 4) {
  console.error("usage: node node_tls_client.js URL CA");
  process.exit(2);
}
within(TOTAL_TIMEOUT, "the whole run", main(process.argv[2], process.argv[3]))
  .then(() => {
    console.log("NODE TLS OK");
    process.exit(0);
  })
  .catch((e) => {
    console.log("FAIL: " + (e && e.message ? e.message : e));
    process.exit(1);
  });
