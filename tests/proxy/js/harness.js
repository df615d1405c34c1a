"use strict";
// Shared by the node test scripts: loads the official socket.io-client from tests/js/node_modules,
// records what the client puts on / takes off the wire, and reports one JSON result line.
//
// Recording happens below engine.io-client: every polling request is caught at node's
// http.request (the layer xmlhttprequest-ssl writes to), every WebSocket message at the `ws`
// WebSocket that engine.io-client's node transport creates.
const fs = require("fs");
const http = require("http");
const path = require("path");
const crypto = require("crypto");
const { createRequire } = require("module");

const MODULES = process.env.SIO_JS_NODE_MODULES || path.resolve(__dirname, "../../js/node_modules");
// Resolve from tests/js so that our `ws` is the very module engine.io-client loads.
const req = createRequire(path.join(MODULES, "..", "index.js"));
const client = req("socket.io-client");
const ws = req("ws");

const INLINE_LIMIT = 2048;

function toBuffer(data) {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data.map(toBuffer));
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new Error(`cannot record ${typeof data}`);
}

// Must match describe() in js_backend.py.
function describe(data, binary) {
  const buf = toBuffer(data);
  const out = { t: binary ? "b" : "t", n: buf.length, h: crypto.createHash("sha256").update(buf).digest("hex") };
  if (buf.length <= INLINE_LIMIT) out.d = binary ? buf.toString("base64") : buf.toString("utf8");
  return out;
}

function queryOf(urlPath) {
  const q = {};
  const i = urlPath.indexOf("?");
  if (i < 0) return q;
  for (const [k, v] of new URLSearchParams(urlPath.slice(i + 1))) q[k] = v;
  return q;
}

class Recorder {
  constructor() {
    this.exchanges = [];
  }

  install() {
    const rec = this;
    const origRequest = http.request;
    http.request = function (...args) {
      const req = origRequest.apply(this, args);
      const opts = typeof args[0] === "object" && !(args[0] instanceof URL) ? args[0] : {};
      const query = queryOf(opts.path || "");
      if (query.transport !== "polling" || !query.rec) return req;
      const ex = { kind: "http", method: opts.method || "GET", query, request: [], status: null, response: [], complete: false };
      rec.exchanges.push(ex);
      const finish = () => { ex.settled = true; };
      const origWrite = req.write;
      req.write = function (chunk, enc, ...rest) {
        if (chunk != null) ex.request.push(typeof chunk === "string" ? Buffer.from(chunk, typeof enc === "string" ? enc : "utf8") : toBuffer(chunk));
        return origWrite.call(this, chunk, enc, ...rest);
      };
      const origEnd = req.end;
      req.end = function (chunk, enc, ...rest) {
        if (chunk != null && typeof chunk !== "function") ex.request.push(typeof chunk === "string" ? Buffer.from(chunk, typeof enc === "string" ? enc : "utf8") : toBuffer(chunk));
        return origEnd.call(this, chunk, enc, ...rest);
      };
      req.on("response", (res) => {
        ex.status = res.statusCode;
        res.on("data", (c) => ex.response.push(Buffer.from(c)));
        res.on("end", () => { ex.complete = true; finish(); });
        res.on("error", finish);
      });
      req.on("error", finish);
      req.on("close", finish);
      return req;
    };

    const WS = ws.WebSocket;
    const entryOf = (sock) => {
      if (!sock.__rec) {
        const query = queryOf(sock.url || "");
        if (!query.rec) return null;
        sock.__rec = { kind: "ws", method: "GET", query, c2s: [], s2c: [] };
        rec.exchanges.push(sock.__rec);
      }
      return sock.__rec;
    };
    const origSend = WS.prototype.send;
    WS.prototype.send = function (data, options, cb) {
      const ex = entryOf(this);
      if (ex) {
        const binary = options && typeof options === "object" && options.binary !== undefined ? options.binary : typeof data !== "string";
        ex.c2s.push(describe(data, binary));
      }
      return origSend.call(this, data, options, cb);
    };
    const origEmit = WS.prototype.emit;
    WS.prototype.emit = function (event, ...args) {
      if (event === "message") {
        const ex = entryOf(this);
        if (ex) ex.s2c.push(describe(args[0], args[1]));
      } else if (event === "open") {
        entryOf(this);
      }
      return origEmit.call(this, event, ...args);
    };
    return this;
  }

  // Resolves once no polling POST is in flight (a long-poll GET may stay pending).
  async quiet() {
    for (let i = 0; i < 200; i++) {
      const busy = this.exchanges.some((e) => e.kind === "http" && e.method === "POST" && !e.settled);
      if (!busy) return;
      await sleep(10);
    }
  }

  dump(file) {
    const out = this.exchanges.map((e) => e.kind === "http"
      ? { kind: "http", method: e.method, query: e.query, request: describe(Buffer.concat(e.request), false), status: e.status, response: describe(Buffer.concat(e.response), false), complete: e.complete }
      : e);
    fs.writeFileSync(file, JSON.stringify(out));
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// Emit with an ack callback; resolves with all ack arguments.
function call(socket, event, ...args) {
  return withTimeout(new Promise((resolve) => socket.emit(event, ...args, (...ack) => resolve(ack))), 15000, `ack of ${event}`);
}

function report(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

// Runs main(args) with a hard deadline; prints {ok:false,error} on failure and always exits.
function run(main) {
  const args = JSON.parse(process.argv[2] || "{}");
  const deadline = setTimeout(() => {
    report({ ok: false, error: "script deadline exceeded" });
    process.exit(2);
  }, args.deadline_ms || 60000);
  main(args).then(
    (result) => { clearTimeout(deadline); report({ ok: true, ...result }); process.exit(0); },
    (err) => { clearTimeout(deadline); report({ ok: false, error: String(err && err.stack || err) }); process.exit(1); },
  );
}

module.exports = { client, ws, Recorder, describe, sleep, once, withTimeout, call, report, run };
