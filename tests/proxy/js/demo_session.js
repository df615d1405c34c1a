"use strict";
// One session of the official socket.io-client against examples/demo_backend.py (through the
// relay): create_terminal -> terminal_ready, terminal_input -> terminal_output, an emit with
// ack, then disconnect.  argv[2] is JSON: {url, transports?}.  Used by the record/replay tests.
const { client, once, withTimeout, run } = require("./harness.js");

run(async (args) => {
  const opts = { reconnection: false, timeout: 10000 };
  if (args.transports) opts.transports = args.transports;
  const socket = client(args.url, opts);
  await withTimeout(once(socket, "connect"), 10000, "connect");
  const ready = once(socket, "terminal_ready");
  socket.emit("create_terminal", { session: "", cols: 100 });
  const [terminal] = await withTimeout(ready, 10000, "terminal_ready");
  const output = once(socket, "terminal_output");
  socket.emit("terminal_input", { session: terminal.session, data: "ls\r" });
  await withTimeout(output, 10000, "terminal_output");
  const status = await withTimeout(socket.emitWithAck("get_block_status", { block_id: "n-1" }), 10000, "ack");
  const pong = await withTimeout(socket.emitWithAck("ping_backend", { n: 2 }), 10000, "pong");
  const transport = socket.io.engine.transport.name;
  socket.disconnect();
  return { session: terminal.session, status, pong, transport };
});
