"use strict";
// The AetherTerm-like scenario of tests/e2e/stack.py (python_scenario), played by the official
// socket.io-client with its default transports: polling first, then the upgrade to WebSocket.
// create_terminal, ai_get_info and wrapper_session_sync are emitted the moment the namespace
// is connected, so they travel by polling POST while the (deliberately slow) upgrade is under
// way; the backend answers create_terminal only once the session is on WebSocket.
// argv[2] is JSON: {url, traceparent, slow_upgrade, terminal_id, templated_request,
// templated_response, message_id, chunks, sync_timestamp, late_delay, deadline_ms}.
const path = require("path");
const { client, once, withTimeout, call, run } = require(path.join(__dirname, "..", "proxy", "js", "harness.js"));

const WAIT_MS = 10000;

// Every server event by name, in arrival order; next(name) waits for the next unread one.
class Inbox {
  constructor(socket) {
    this.events = new Map();
    this.waiters = new Map();
    socket.onAny((event, ...args) => {
      const waiting = this.waiters.get(event);
      if (waiting && waiting.length) waiting.shift()(args[0]);
      else this.list(event).push(args[0]);
    });
  }

  list(event) {
    if (!this.events.has(event)) this.events.set(event, []);
    return this.events.get(event);
  }

  count(event) {
    return (this.events.get(event) || []).length;
  }

  next(event) {
    const queued = this.list(event);
    if (queued.length) return Promise.resolve(queued.shift());
    const waiting = this.waiters.get(event) || [];
    this.waiters.set(event, waiting);
    return withTimeout(new Promise((resolve) => waiting.push(resolve)), WAIT_MS, event);
  }
}

run(async (args) => {
  const manager = new client.Manager(args.url, {
    reconnection: false,
    timeout: WAIT_MS,
    query: { slow_upgrade: String(args.slow_upgrade) },
    extraHeaders: { traceparent: args.traceparent },
  });
  const socket = manager.socket("/");
  const inbox = new Inbox(socket);
  socket.on("question", (q, cb) => cb({ answer: q.n * 2 }));
  const r = { upgrades: [], chunks: 0 };
  manager.engine.on("upgrade", (t) => r.upgrades.push(t.name));

  const connected = new Promise((resolve, reject) => {
    socket.once("connect", () => {
      r.sid = manager.engine.id;
      r.transport_at_emit = manager.engine.transport.name;
      socket.emit("create_terminal", { session: "", cols: 80, reply_after_upgrade: true });
      socket.emit("ai_get_info", {});
      socket.emit("wrapper_session_sync", { timestamp: args.sync_timestamp, delay: args.late_delay });
      resolve();
    });
    socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
  await withTimeout(connected, WAIT_MS, "connect");

  const ready = await inbox.next("terminal_ready");
  r.terminal_session = ready.session;
  r.transport_at_ready = manager.engine.transport.name;
  r.echo = await call(socket, "echo", { n: 1 });
  r.ask = await call(socket, "ask_client", { n: 21 });
  socket.emit(args.templated_request, { terminalId: args.terminal_id, _requestId: "noop" });
  r.created = await inbox.next(args.templated_response);
  socket.emit("ai_chat_message", { message_id: args.message_id, chunks: args.chunks });
  r.complete = await inbox.next("ai_chat_complete");
  r.chunks = inbox.count("ai_chat_chunk");
  socket.emit("create_terminal", { session: "s-broken", fail: true });
  r.error = await inbox.next("terminal_error");
  r.late = await inbox.next("wrapper_session_sync_response");

  // Leave cleanly (the proxy must see the session end) before the process exits.
  const closed = once(manager.engine, "close");
  socket.disconnect();
  await withTimeout(closed, WAIT_MS, "engine close");
  return r;
});
