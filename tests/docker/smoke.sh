#!/usr/bin/env bash
# Docker smoke test (not part of the pytest run): build the image, bring the compose stack up
# with docker-compose.smoke.yml (OpenObserve replaced by the project's OpenObserve test
# double), send real Socket.IO traffic through the published proxy port from the host before
# the double exists, check that /readyz says "retrying", then start the double, which listens
# only 20 s after its start (a slow first start of OpenObserve), check that the traces
# recorded before reached it, stop the proxy with SIGTERM, and tear everything down.
#
#   bash tests/docker/smoke.sh
#
# Needs: a Docker engine (DOCKER_HOST; on the project's dev machine the script starts the
# local one from ../shared/docker if none answers), `docker compose` or `docker-compose`, and
# the repo's .venv (python-socketio for the client).  Env knobs: SMOKE_BUILD_ARGS (default
# "--network host": the dev machine's engine has no NAT), SMOKE_KEEP=1 (leave the stack up),
# SMOKE_WAIT_S (default 120).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
py="$repo/.venv/bin/python"
wait_s=${SMOKE_WAIT_S:-120}
image=socketio-trace-proxy:local

log() { printf '[smoke %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { log "FAIL: $*"; exit 1; }

[ -x "$py" ] || fail "no $py (run: bash .ci/install)"
if ! docker info >/dev/null 2>&1; then
    if [ -x ../shared/docker/start-engine.sh ]; then
        eval "$(../shared/docker/start-engine.sh)"
        ../shared/docker/make-base-image.sh python:3.12-slim
    else
        fail "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset})"
    fi
fi
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    compose=(docker-compose)
fi
export COMPOSE_PROJECT_NAME=siotp-smoke
compose+=(-f docker-compose.yml -f docker-compose.smoke.yml)

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rand() { "$py" -c 'import secrets; print(secrets.token_hex(12))'; }

# Values from the shell win over a developer's .env, so the smoke run never uses real secrets.
export ZO_ROOT_USER_EMAIL=smoke@example.com
ZO_ROOT_USER_PASSWORD="Sm0ke-$(rand)"
SOCKET_TRACE_ADMIN_TOKEN=$(rand)
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
OPENOBSERVE_PORT=$(free_port)
export ZO_ROOT_USER_PASSWORD SOCKET_TRACE_ADMIN_TOKEN PROXY_PORT ADMIN_PORT OPENOBSERVE_PORT
export BACKEND_URL=http://backend:5000 PROXY_CONFIG=default.yaml SOCKET_TRACKING_ENABLED=true
export OPENOBSERVE_ENDPOINT=http://openobserve:5080 OPENOBSERVE_ORG=default
export OPENOBSERVE_IMAGE=unused-replaced-by-smoke-override BASE_IMAGE=python:3.12-slim

teardown() {
    status=$?
    if [ "$status" != 0 ]; then
        log "stack logs (last 60 lines per service):"
        "${compose[@]}" logs --no-color --tail=60 || true
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then
        log "SMOKE_KEEP=1: stack left up (project $COMPOSE_PROJECT_NAME)"
    else
        "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    if [ "$status" = 0 ]; then log "PASS"; else log "FAILED (exit $status)"; fi
    exit "$status"
}
trap teardown EXIT

log "building $image"
# shellcheck disable=SC2086  # SMOKE_BUILD_ARGS is a list of flags
docker build ${SMOKE_BUILD_ARGS---network host} -q -t "$image" . >/dev/null
docker run --rm --entrypoint python "$image" -c \
    'import os, uvloop; assert os.getuid() != 0, "runs as root"; print("uvloop", uvloop.__version__, "uid", os.getuid())'

log "compose up backend and proxy; OpenObserve (the double) not yet (proxy port $PROXY_PORT, admin $ADMIN_PORT, double $OPENOBSERVE_PORT)"
"${compose[@]}" up -d --no-build --no-deps backend proxy

container_of() { "${compose[@]}" ps -q "$1"; }
wait_healthy() {
    local svc=$1 id state deadline=$((SECONDS + wait_s))
    id=$(container_of "$svc")
    while :; do
        state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")
        [ "$state" = healthy ] && { log "$svc healthy"; return 0; }
        [ "$(docker inspect -f '{{.RestartCount}}' "$id")" = 0 ] || fail "$svc exited and was restarted"
        [ "$SECONDS" -ge "$deadline" ] && fail "$svc not healthy after ${wait_s}s (state: $state)"
        sleep 2
    done
}
wait_healthy backend
wait_healthy proxy

log "admin listener from the host: /healthz open, /api/metrics behind the token"
"$py" - "$ADMIN_PORT" "$SOCKET_TRACE_ADMIN_TOKEN" <<'PY'
import sys, urllib.error, urllib.request
port, token = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
try:
    urllib.request.urlopen(f"{base}/api/metrics", timeout=5)
    raise SystemExit("/api/metrics answered without the token")
except urllib.error.HTTPError as exc:
    assert exc.code == 401, exc.code
req = urllib.request.Request(f"{base}/api/metrics", headers={"Authorization": f"Bearer {token}"})
assert urllib.request.urlopen(req, timeout=5).status == 200
print("admin: healthz 200, api without token 401, with token 200")
PY

log "Socket.IO traffic through http://127.0.0.1:$PROXY_PORT before OpenObserve answers (upgrade, polling only, websocket only)"
"$py" -m socketio_trace_proxy.examples.demo_client --url "http://127.0.0.1:$PROXY_PORT"
"$py" -m socketio_trace_proxy.examples.demo_client --url "http://127.0.0.1:$PROXY_PORT" --transport polling
"$py" -m socketio_trace_proxy.examples.demo_client --url "http://127.0.0.1:$PROXY_PORT" --transport websocket
traffic_done=$("$py" -c 'import time; print(time.time())')

log "while nothing answers: /readyz says the OpenObserve exporters are retrying"
"$py" - "$ADMIN_PORT" "$OPENOBSERVE_PORT" <<'PY'
import json, sys, time, urllib.error, urllib.request
admin, receiver = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{receiver}/healthz", timeout=2)
        raise SystemExit("the receiver answered before the proxy was seen retrying")
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5)
        body = None
    except urllib.error.HTTPError as exc:
        assert exc.code == 503, exc.code
        body = json.load(exc)
    states = {e["name"]: e["state"] for e in (body or {}).get("exporters", [])}
    if states and all(states[n] == "retrying" for n in ("openobserve-traces", "openobserve-json")):
        print(f"/readyz 503, exporters {states}")
        break
    if time.monotonic() > deadline:
        raise SystemExit(f"exporters never said retrying: {states}")
    time.sleep(0.5)
PY
log "now OpenObserve (the double) starts, and listens only 20 s later: a slow first start"
"${compose[@]}" up -d --no-build --no-deps openobserve
wait_healthy openobserve

check_received() {  # $1: sessions that must have a create_terminal pair span, $2: wait (s)
    "$py" - "$OPENOBSERVE_PORT" "$1" "$2" "$traffic_done" <<'PY'
import json, sys, time, urllib.request
port, sessions, wait_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
traffic_done = float(sys.argv[4])
NAME = "create_terminal -> terminal_ready"
deadline = time.monotonic() + wait_s
while True:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_double/received", timeout=5) as r:
        got = json.load(r)
    pairs = [s for s in got["spans"] if s["name"] == NAME]
    if len({s["attributes"].get("messaging.socket.io.sid") for s in pairs}) >= sessions:
        break
    if time.monotonic() > deadline:
        names = sorted({s["name"] for s in got["spans"]})
        raise SystemExit(f"{NAME!r} from {sessions} sessions not received; span names: {names}")
    time.sleep(1)

spans = got["spans"]
for s in pairs:
    a = s["attributes"]
    assert s["resource"].get("service.name") == "socketio-trace-proxy", s["resource"]
    assert a.get("messaging.system") == "socket.io", a
    assert a.get("messaging.socket.io.outcome") == "ok", a
    assert s["org"] == "default" and s["encoding"] == "protobuf", (s["org"], s["encoding"])
    assert s["end_ns"] >= s["start_ns"] > 0
transports = {s["attributes"].get("messaging.socket.io.transport") for s in pairs}
assert {"polling", "websocket"} <= transports, transports
acks = [s for s in spans if s["attributes"].get("messaging.socket.io.event") == "ping_backend"]
assert acks and all("messaging.message.id" in s["attributes"] for s in acks), acks[:1]
ingest = [q for q in got["requests"] if q["path"].startswith("/api/default/")]
assert ingest and all(q["authorized"] and q["status"] in (200, 206) for q in ingest), ingest[:3]
assert set(got["records"]) == {"socket_io_traces"}, sorted(got["records"])  # stored name
records = got["records"]["socket_io_traces"]
assert any(r.get("socket.request.event") == "create_terminal" for r in records), records[:2]
stored = got["stored"]["socket_io_traces"]
assert any(r.get("socket_request_event") == "create_terminal" for r in stored), stored[:1]
early = [s for s in pairs if s["start_ns"] / 1e9 < traffic_done]
assert len({s["attributes"]["messaging.socket.io.sid"] for s in early}) >= 3, len(early)
assert all(s["status_code"] == 0 for s in pairs), "success is left Unset"
print(f"double received {len(spans)} spans ({len(pairs)} {NAME!r}, {len(early)} recorded "
      f"before it answered, transports "
      f"{sorted(transports)}, {len(acks)} ping_backend ack spans), {len(records)} JSON records "
      f"in socket-io-traces, {len(ingest)} authorized ingestion requests")
PY
}
check_received 3 "$wait_s"

log "one more session, then SIGTERM right away: its spans must be flushed on the way out"
"$py" -m socketio_trace_proxy.examples.demo_client --url "http://127.0.0.1:$PROXY_PORT" --transport websocket
proxy_id=$(container_of proxy)
"${compose[@]}" stop -t 30 proxy
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$proxy_id")
[ "$exit_code" = 0 ] || fail "proxy exited with $exit_code on SIGTERM (137 = it had to be killed)"
log "proxy exited 0 on SIGTERM"
check_received 4 15  # nothing can arrive later: the proxy is gone
