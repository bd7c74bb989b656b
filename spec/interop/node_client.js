// Interop peer for spec/interop_node_spec.lua: Node's `ws` package against a
// wslua server.
//
// usage: node node_client.js echo URL    messages of every size echoed
//                                        byte-exact, a fragmented one, pings
//                                        answered, a clean close with 1000
//        node node_client.js deflate URL the same with permessage-deflate
//                                        (every message compressed): the
//                                        extension negotiated, compressible
//                                        and random messages up to 1 MiB
//        node node_client.js probe URL   spec/interop/probe_app.lua: the
//                                        server's subprotocol choice, a
//                                        server-initiated close code, a
//                                        client close with 1000
//
// Prints one line per check and "NODE INTEROP OK" at the end; on any mismatch
// prints "FAIL: ..." and exits 1. Everything is bounded in time.
"use strict";

const WebSocket = require("ws");

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZES = [0, 125, 126, 64 * KiB, 1 * MiB];
const BIG = 16 * MiB;
const STEP_TIMEOUT = 20000; // ms for one message, ping or close
const TOTAL_TIMEOUT = 50000; // ms for the whole run

class Mismatch extends Error {}

function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}

// A small seeded generator, so a failure is reproducible.
function rng(seed) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function bytesOf(size, next) {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = next() & 0xff;
  return b;
}

// Valid UTF-8 of exactly size bytes, with 1- to 4-byte characters so that
// characters straddle frame and read boundaries.
function textOf(size, next) {
  const chars = ["a", "\u00e9", "\u20ac", "\u{1F600}", "z", "\u00df"];
  const parts = [];
  let n = 0;
  while (n < size) {
    let c = chars[next() % chars.length];
    let len = Buffer.byteLength(c);
    if (n + len > size) {
      c = "x";
      len = 1;
    }
    parts.push(c);
    n += len;
  }
  return Buffer.from(parts.join(""));
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Mismatch("timed out: " + what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
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

// A connection whose incoming messages and close queue up for next();
// options are added to ws's.
function open(url, protocols, options) {
  const ws = new WebSocket(url, protocols, {
    maxPayload: 32 * MiB,
    handshakeTimeout: 10000,
    ...options,
  });
  ws.on("upgrade", (res) => {
    ws.agreed = res.headers["sec-websocket-extensions"];
  });
  const inbox = [];
  let waiter = null;
  const push = (item) => {
    inbox.push(item);
    if (waiter) {
      const w = waiter;
      waiter = null;
      w();
    }
  };
  ws.on("message", (data, isBinary) => push({ data, isBinary }));
  ws.on("close", (code, reason) =>
    push({ close: true, code, reason: reason.toString() }),
  );
  ws.on("error", (err) => push({ error: err }));
  ws.next = async (what) => {
    while (inbox.length === 0) {
      await within(STEP_TIMEOUT, what, new Promise((r) => (waiter = r)));
    }
    return inbox.shift();
  };
  return within(
    STEP_TIMEOUT,
    "opening " + url,
    new Promise((resolve, reject) => {
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    }),
  );
}

function describe(buf, binary) {
  return (binary ? "binary " : "text ") + buf.length + " B";
}

async function roundtrip(ws, buf, binary, label = "") {
  const what = label + describe(buf, binary);
  ws.send(buf, { binary });
  const got = await ws.next("echo of " + what);
  check(!got.error, what + ": " + (got.error && got.error.message));
  check(!got.close, what + ": closed with " + got.code + " " + got.reason);
  check(got.isBinary === binary, what + " came back as " +
    (got.isBinary ? "binary" : "text"));
  if (!buf.equals(got.data)) {
    let i = 0;
    while (i < buf.length && i < got.data.length && buf[i] === got.data[i]) i++;
    throw new Mismatch(what + " came back as " + got.data.length +
      " B, first difference at byte " + i);
  }
  console.log("ok echo " + what);
}

async function ping(ws) {
  const payload = Buffer.from("ping-\u0000\u00ff-wslua");
  const pong = new Promise((resolve) => ws.once("pong", resolve));
  ws.ping(payload);
  const got = await within(STEP_TIMEOUT, "pong", pong);
  check(payload.equals(got), "pong payload " + got.toString("hex") +
    " for ping " + payload.toString("hex"));
  console.log("ok ping answered");
}

// A text message in three frames, a character split between the first two
// and a ping between them (control frames may come amid fragments, RFC 6455
// section 5.4); it must come back whole, as one text message.
async function fragmented(ws) {
  const whole = Buffer.from("h\u00e9\u20ac\u{1F600} in fragments");
  const pong = new Promise((resolve) => ws.once("pong", resolve));
  ws.send(whole.subarray(0, 2), { binary: false, fin: false });
  ws.ping("amid");
  ws.send(whole.subarray(2, 9), { binary: false, fin: false });
  ws.send(whole.subarray(9), { binary: false, fin: true });
  const got = await ws.next("echo of a fragmented message");
  check(!got.close && !got.error, "fragmented message: connection ended");
  check(!got.isBinary && whole.equals(got.data),
    "fragmented text came back as " + JSON.stringify(got.data.toString()));
  const data = await within(STEP_TIMEOUT, "pong for a ping amid fragments",
    pong);
  check(data.toString() === "amid", "pong payload " + data.toString());
  console.log("ok echo fragmented text, ping amid answered");
}

async function clientClose(ws) {
  const start = Date.now();
  ws.close(1000, "bye from node");
  const got = await ws.next("close");
  check(got.close, "a message instead of the close");
  check(got.code === 1000, "server's close code was " + got.code +
    ", not 1000");
  // ws reports close once TCP is closed too; slow means the server never did.
  const took = Date.now() - start;
  check(took < 2000, "closing handshake took " + took + " ms");
  console.log("ok close 1000 (server replied " + got.code + ", " + took +
    " ms)");
}

async function echo(url) {
  const next = rng(6455);
  const ws = await open(url);
  for (const size of SIZES) {
    await roundtrip(ws, textOf(size, next), false);
    await roundtrip(ws, bytesOf(size, next), true);
  }
  await ping(ws);
  await fragmented(ws);
  await roundtrip(ws, bytesOf(BIG, next), true);
  await roundtrip(ws, Buffer.from("after the big one"), false);
  await clientClose(ws);
}

async function deflate(url) {
  const next = rng(7692);
  // threshold 0: ws compresses every message, fragments too.
  const ws = await open(url, undefined,
    { perMessageDeflate: { threshold: 0 } });
  check(typeof ws.agreed === "string" &&
    ws.agreed.startsWith("permessage-deflate"),
    "permessage-deflate was not negotiated (" + ws.agreed + ")");
  check(ws.extensions === "permessage-deflate",
    "extensions in use: '" + ws.extensions + "'");
  console.log("ok negotiated " + ws.agreed);
  for (const size of SIZES) {
    await roundtrip(ws, textOf(size, next), false);
    await roundtrip(ws, bytesOf(size, next), true);
    await roundtrip(ws, compressible(size), false, "compressible ");
    await roundtrip(ws, compressible(size), true, "compressible ");
  }
  await ping(ws);
  await fragmented(ws);
  await roundtrip(ws, Buffer.from("after the fragments"), false);
  await clientClose(ws);
}

async function probe(url) {
  // The server supports v1 and v2; it takes the first offered one it knows.
  let ws = await open(url, ["x.unknown", "v2.wslua", "v1.wslua"]);
  check(ws.protocol === "v2.wslua", "subprotocol '" + ws.protocol +
    "', expected 'v2.wslua'");
  console.log("ok subprotocol " + ws.protocol);
  await roundtrip(ws, Buffer.from("probe"), false);
  ws.send("close 4321 server says bye");
  const got = await ws.next("server-initiated close");
  check(got.close, "a message instead of the server's close");
  check(got.code === 4321 && got.reason === "server says bye",
    "server close came as " + got.code + " '" + got.reason + "'");
  console.log("ok server close " + got.code + " " + got.reason);

  ws = await open(url);
  check(ws.protocol === "", "subprotocol '" + ws.protocol +
    "' chosen though none was offered");
  console.log("ok no subprotocol offered, none chosen");
  await clientClose(ws);
}

async function main() {
  const [mode, url] = process.argv.slice(2);
  const runs = { echo, deflate, probe };
  if (!url || !Object.hasOwn(runs, mode)) {
    console.error("usage: node node_client.js echo|deflate|probe URL");
    return 2;
  }
  try {
    await within(TOTAL_TIMEOUT, "the whole run", runs[mode](url));
  } catch (err) {
    console.log("FAIL: " + (err instanceof Mismatch ? err.message :
      err.stack || err));
    return 1;
  }
  console.log("NODE INTEROP OK");
  return 0;
}

main().then((code) => process.exit(code));
