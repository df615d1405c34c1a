"use strict";
// One client session against js_backend.py: two namespaces, events, acks both ways, nested
// binary attachments and payloads at the backend's size limit, on the transports given.
// argv[2] is JSON: {url, rec, transports?, wait_upgrade?, big?, max, log?}.
const { client, Recorder, describe, once, withTimeout, call, run } = require("./harness.js");

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
// Engine.IO + Socket.IO framing around the big payloads (namespace "/", no ack id).
const TEXT_OVERHEAD = '42["big","'.length + '"]'.length;

// The largest payload whose Engine.IO message / polling body is at most `max` bytes.
function bigSize(kind, transport, max) {
  if (kind === "text") return max - TEXT_OVERHEAD;
  if (transport === "websocket") return max; // the attachment travels as its own binary frame
  // polling: the attachment travels as "b" + base64. The header packet usually goes out
  // alone, but when a POST is still in flight engine.io-client batches both into one body
  // ("\x1e"-separated), so leave room for the header too: the body stays within `max`.
  const header = '451-["big",{"_placeholder":true,"num":0}]'.length + 1; // + "\x1e"
  return Math.floor((max - 1 - header) / 4) * 3;
}

function bigPayload(kind, n) {
  if (kind === "text") {
    const unit = ALPHABET.repeat(Math.ceil(n / ALPHABET.length) || 1);
    return unit.slice(0, n);
  }
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = (i * 31 + 7) & 255;
  return buf;
}

// JSON-safe view of what socket.io-client handed us: binary becomes {$bin: hex, type}.
function plain(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("hex"), type: "Buffer" };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex"), type: "ArrayBuffer" };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

function connected(socket) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
}

run(async (args) => {
  const rec = new Recorder().install();
  const opts = { query: { rec: args.rec }, reconnection: false, timeout: 10000 };
  if (args.transports) opts.transports = args.transports;
  const manager = new client.Manager(args.url, opts);
  const main = manager.socket("/");
  const second = manager.socket("/second", { auth: { token: "t-1" } });
  const welcome = once(second, "welcome");
  main.on("question", (q, cb) => cb({ answer: q.n * 2, via: "node" }));
  const r = { first_transport: manager.engine.transport.name, upgrades: [] };
  manager.engine.on("upgrade", (t) => r.upgrades.push(t.name));
  await withTimeout(Promise.all([connected(main), connected(second)]), 10000, "connect");

  r.echo = await call(main, "echo", "héllo ☃ 😀", 42, { a: [1, null, true, 2.5] });
  const reply = once(main, "echo_reply");
  main.emit("echo_event", "x", { y: [1] });
  r.echo_event = await withTimeout(reply, 10000, "echo_reply");
  r.ask = await call(main, "ask_client", { n: 21 });
  const bin = { a: Buffer.from([0, 1, 2, 255]), nested: { list: [Buffer.from([]), "x", { deep: Buffer.from("deep") }] } };
  r.binary_echo = plain(await call(main, "echo", bin, Buffer.from("second arg")));
  r.server_binary = plain(await call(main, "server_binary"));
  r.welcome = (await withTimeout(welcome, 10000, "welcome"))[0];
  r.second = await call(second, "echo", "two", 2);

  if (args.wait_upgrade && manager.engine.transport.name !== "websocket") {
    await withTimeout(once(manager.engine, "upgrade"), 10000, "upgrade");
  }
  if (args.big) {
    for (const kind of ["text", "binary"]) {
      const transport = manager.engine.transport.name;
      const n = bigSize(kind, transport, args.max);
      const payload = bigPayload(kind, n);
      await rec.quiet();
      const back = once(main, "big_back");
      main.emit("big", payload);
      const [server, echoed] = await withTimeout(back, 20000, `big ${kind}`);
      r[`big_${kind}`] = {
        n, transport, server, sent: describe(payload, kind === "binary"),
        echoed: describe(echoed, kind === "binary"), echoed_is_buffer: Buffer.isBuffer(echoed),
      };
    }
  }
  await rec.quiet();
  r.last_transport = manager.engine.transport.name;
  if (args.log) rec.dump(args.log);
  return r;
});
