// Load generator for bench/relay_bench.py: many socket.io-client clients in one node process.
//
// Modes (one JSON object per line on stdout, nothing else):
//   echo: N clients, each a closed loop of emit("echo", payload, ack); after the warm-up prints
//         {"phase":"start"}, after the measured window {"phase":"end"}, then the result
//         {"phase":"result", acks, elapsed_s, p50_us, p99_us, ...}.
//   idle: opens N WebSocket sessions (in batches), prints {"phase":"ready", connected}, then
//         holds them until stdin closes or --hold seconds pass, and prints {"phase":"done"}.
//   upgrade: --urls name=url,name=url...: one session at a time, polling first then upgraded to
//         WebSocket (the default transports), targets interleaved in blocks of --block sessions
//         until each had --sessions; per session the time from io() to the first ack received
//         after the upgrade (the emit is made at once, as the official suites do), and to the
//         engine's "upgrade" event. Prints {"phase":"result", targets: {name: {...}}}.
// Everything is bounded: run time, number of clients, latency samples (reservoir).
"use strict";

const http = require("http");
const { io } = require("socket.io-client");

function parseArgs(argv) {
  const opts = {
    mode: "echo",
    url: "http://127.0.0.1:5000",
    transport: "websocket",
    clients: 50,
    payload: 100,
    warmup: 1,
    duration: 5,
    hold: 120,
    batch: 100,
    connectTimeout: 20,
    keepalive: true,
    deflate: true,
    urls: "",
    sessions: 200,
    block: 10,
  };
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (key === "no-keepalive" || key === "no-deflate") {
      opts[key.slice(3)] = false;
      continue;
    }
    const value = argv[++i];
    if (!(key in opts) || value === undefined) {
      throw new Error(`unknown or incomplete option --${key}`);
    }
    opts[key] = typeof opts[key] === "number" ? Number(value) : value;
  }
  return opts;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const MAX_SAMPLES = 500000;

class Reservoir {
  // Bounded latency sample store: uniform reservoir sampling once full (Vitter's algorithm R).
  constructor(capacity) {
    this.values = new Float64Array(capacity);
    this.size = 0;
    this.seen = 0;
  }
  add(v) {
    this.seen++;
    if (this.size < this.values.length) {
      this.values[this.size++] = v;
    } else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.values.length) this.values[j] = v;
    }
  }
  percentile(p) {
    if (this.size === 0) return null;
    const sorted = this.values.slice(0, this.size).sort();
    const idx = Math.min(this.size - 1, Math.max(0, Math.ceil((p / 100) * this.size) - 1));
    return sorted[idx];
  }
}

function makeClient(opts, agent) {
  return io(opts.url, {
    transports: [opts.transport],
    upgrade: false,
    reconnection: false,
    forceNew: true,
    timeout: opts.connectTimeout * 1000,
    agent: agent,
    // Like browsers, the node client offers permessage-deflate unless told not to.
    perMessageDeflate: opts.deflate ? { threshold: 1024 } : false,
  });
}

function connectAll(opts, agent, count) {
  // Connects `count` clients, at most opts.batch handshakes in flight at a time.
  return new Promise((resolve) => {
    const sockets = [];
    let failed = 0;
    let started = 0;
    let settled = 0;
    let lastError = null;
    const startNext = () => {
      while (started < count && started - settled < opts.batch) {
        started++;
        const s = makeClient(opts, agent);
        let done = false;
        const finish = (ok, err) => {
          if (done) return;
          done = true;
          settled++;
          if (ok) sockets.push(s);
          else {
            failed++;
            lastError = String(err && err.message ? err.message : err);
            s.close();
          }
          if (settled === count) resolve({ sockets, failed, lastError });
          else startNext();
        };
        s.once("connect", () => finish(true));
        s.once("connect_error", (err) => finish(false, err));
      }
    };
    if (count === 0) resolve({ sockets, failed, lastError });
    else startNext();
  });
}

async function runEcho(opts, agent) {
  const { sockets, failed, lastError } = await connectAll(opts, agent, opts.clients);
  if (sockets.length === 0) {
    emit({ phase: "result", error: `no client connected: ${lastError}`, acks: 0 });
    return;
  }
  const payload = "x".repeat(opts.payload);
  const samples = new Reservoir(MAX_SAMPLES);
  let measuring = false;
  let stopping = false;
  let acks = 0;
  let ackTimeouts = 0;
  let inflight = 0;
  let disconnects = 0;

  const loop = (s) => {
    if (stopping || !s.connected) return;
    const t0 = process.hrtime.bigint();
    inflight++;
    s.timeout(10000).emit("echo", payload, (err, reply) => {
      inflight--;
      if (err) {
        ackTimeouts++;
      } else if (measuring) {
        acks++;
        samples.add(Number(process.hrtime.bigint() - t0) / 1000);
        if (reply.length !== payload.length) ackTimeouts++;
      }
      loop(s);
    });
  };
  for (const s of sockets) {
    s.on("disconnect", () => disconnects++);
    loop(s);
  }
  await sleep(opts.warmup * 1000);
  measuring = true;
  const start = process.hrtime.bigint();
  emit({ phase: "start" });
  await sleep(opts.duration * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  emit({ phase: "end" });
  stopping = true;
  // Let in-flight emits drain (bounded) so the servers see orderly closes.
  for (let i = 0; i < 50 && inflight > 0; i++) await sleep(20);
  for (const s of sockets) s.close();
  emit({
    phase: "result",
    acks,
    elapsed_s: elapsed,
    acks_per_s: acks / elapsed,
    p50_us: samples.percentile(50),
    p99_us: samples.percentile(99),
    clients: sockets.length,
    connect_failures: failed,
    ack_errors: ackTimeouts,
    disconnects,
    samples_dropped: samples.seen - samples.size,
  });
}

async function runIdle(opts, agent) {
  const { sockets, failed, lastError } = await connectAll(opts, agent, opts.clients);
  let disconnects = 0;
  for (const s of sockets) s.on("disconnect", () => disconnects++);
  emit({ phase: "ready", connected: sockets.length, failed, last_error: lastError });
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, opts.hold * 1000);
    process.stdin.on("end", () => {
      clearTimeout(timer);
      resolve();
    });
    process.stdin.on("error", resolve);
    process.stdin.resume();
  });
  for (const s of sockets) s.close();
  emit({ phase: "done", disconnects });
}

function upgradeSession(url, opts, agent) {
  // One session: emit at once (buffered until connected); the first ack that arrives once the
  // engine runs on WebSocket ends it. Resolves {ack_ms, upgrade_ms} or {error}.
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const s = io(url, {
      forceNew: true,
      reconnection: false,
      timeout: opts.connectTimeout * 1000,
      agent: agent,
      perMessageDeflate: opts.deflate ? { threshold: 1024 } : false,
    });
    let upgradeMs = null;
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.close();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ error: "timeout" }), opts.connectTimeout * 1000);
    s.io.on("open", () => {
      s.io.engine.once("upgrade", () => {
        upgradeMs = ms();
      });
    });
    const ask = () => {
      s.emit("echo", "x", () => {
        if (s.io.engine && s.io.engine.transport.name === "websocket") {
          finish({ ack_ms: ms(), upgrade_ms: upgradeMs });
        } else {
          // Acked over polling before the upgrade: ask again once it is done.
          s.io.engine.once("upgrade", ask);
        }
      });
    };
    ask();
    s.on("connect_error", (err) => finish({ error: String(err && err.message ? err.message : err) }));
  });
}

async function runUpgrade(opts, agent) {
  const targets = opts.urls.split(",").filter(Boolean).map((pair) => {
    const i = pair.indexOf("=");
    return { name: pair.slice(0, i), url: pair.slice(i + 1), ack: [], upgrade: [], errors: 0, lastError: null };
  });
  for (let done = 0; done < opts.sessions; done += opts.block) {
    for (const t of targets) {
      for (let i = 0; i < Math.min(opts.block, opts.sessions - done); i++) {
        const r = await upgradeSession(t.url, opts, agent);
        if (r.error) {
          t.errors++;
          t.lastError = r.error;
        } else {
          t.ack.push(r.ack_ms);
          if (r.upgrade_ms !== null) t.upgrade.push(r.upgrade_ms);
        }
      }
    }
  }
  const pct = (values, p) => {
    if (values.length === 0) return null;
    const sorted = Float64Array.from(values).sort();
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  };
  const out = {};
  for (const t of targets) {
    out[t.name] = {
      sessions: t.ack.length,
      errors: t.errors,
      last_error: t.lastError,
      ack_p50_ms: pct(t.ack, 50),
      ack_p90_ms: pct(t.ack, 90),
      upgrade_p50_ms: pct(t.upgrade, 50),
      upgrade_p90_ms: pct(t.upgrade, 90),
    };
  }
  emit({ phase: "result", targets: out });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const opts = parseArgs(process.argv);
  // Browsers keep polling connections alive; xmlhttprequest-ssl opens one TCP connection per
  // request unless it is given an agent.
  const agent = opts.keepalive ? new http.Agent({ keepAlive: true }) : undefined;
  // Hard stop: whatever happens, this process ends on its own.
  const limits = {
    idle: opts.hold + opts.connectTimeout + 30,
    upgrade: opts.sessions * opts.urls.split(",").length * 2 + 60,
  };
  const limit = limits[opts.mode] || opts.warmup + opts.duration + opts.connectTimeout + 30;
  setTimeout(() => {
    emit({ phase: "result", error: "hard time limit reached", acks: 0 });
    process.exit(2);
  }, limit * 1000).unref();
  if (opts.mode === "echo") await runEcho(opts, agent);
  else if (opts.mode === "idle") await runIdle(opts, agent);
  else if (opts.mode === "upgrade") await runUpgrade(opts, agent);
  else throw new Error(`unknown mode ${opts.mode}`);
  if (agent) agent.destroy();
  // Do not wait for lingering sockets/timers of closed clients.
  setTimeout(() => process.exit(0), 50);
}

main().catch((err) => {
  emit({ phase: "result", error: String(err && err.stack ? err.stack : err), acks: 0 });
  process.exit(1);
});
