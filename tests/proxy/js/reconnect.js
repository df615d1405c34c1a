"use strict";
// Reconnect after the backend restarts: connect through the relay, prove it works, report each
// phase as a JSON line (the test kills and restarts the backend in between), then prove it
// works again on the new session.  argv[2] is JSON: {url, rec, transports?}.
const { client, report, withTimeout, call, run } = require("./harness.js");

function connectedOnce(socket) {
  return new Promise((resolve) => socket.once("connect", resolve));
}

run(async (args) => {
  const opts = {
    query: { rec: args.rec }, timeout: 3000,
    reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0,
  };
  if (args.transports) opts.transports = args.transports;
  const manager = new client.Manager(args.url, opts);
  const main = manager.socket("/");
  const second = manager.socket("/second");
  await withTimeout(Promise.all([connectedOnce(main), connectedOnce(second)]), 10000, "first connect");
  const before = { sid: main.id, engine: manager.engine.id, transport: manager.engine.transport.name };
  const echo1 = await call(main, "echo", "before");

  const disconnected = new Promise((resolve) => main.once("disconnect", resolve));
  let failures = 0;
  manager.on("reconnect_error", (err) => {
    failures += 1;
    if (failures === 1) report({ phase: "reconnect_error", error: String(err && err.message) });
  });
  const back = Promise.all([connectedOnce(main), connectedOnce(second)]);
  report({ phase: "connected", ...before, echo: echo1 });

  const reason = await disconnected;
  report({ phase: "disconnected", reason });
  await withTimeout(back, 30000, "reconnect");
  const after = { sid: main.id, engine: manager.engine.id, transport: manager.engine.transport.name };
  const echo2 = await call(main, "echo", "after");
  const echo3 = await call(second, "echo", "after");
  manager.engine.close();
  return { before, after, reason, failures, echo: [echo1, echo2, echo3] };
});
