# socketio-trace-proxy container image.
#
#   docker build -t socketio-trace-proxy:local .
#   docker build --build-arg BASE_IMAGE=python:3.11-slim -t socketio-trace-proxy:local .
#
# Ports (EXPOSEd below):
#   8080  the relay: point the browser / front end here instead of at the backend
#   9090  the admin listener: dashboard, /api/*, /metrics, /healthz, /readyz.  The image
#         default binds it to loopback inside the container (healthcheck only); to reach it
#         from outside, run with `--admin 0.0.0.0:9090` AND set SOCKET_TRACE_ADMIN_TOKEN
#         (the proxy refuses a non-loopback admin address without a token).
# Config: mount your own directory on /etc/socketio-trace-proxy (read-only is fine) and pass
#   `--config /etc/socketio-trace-proxy/<file>.yaml`; the image ships the default config there.
# Secrets (OPENOBSERVE_USER/PASS, SOCKET_TRACE_ADMIN_TOKEN) come from the environment only.
# Stop: SIGTERM reaches the proxy directly (exec-form ENTRYPOINT, no shell), which stops
#   accepting, closes sessions and flushes the exporters within its deadline.

ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A C compiler for the compiled core (mypyc, see setup.py); the runtime stage needs none.
# The python:*-slim images ship Python.h; a base image with Debian's Python needs python3-dev.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev \
    && { python -c "import os, sysconfig; os.stat(sysconfig.get_path('include') + '/Python.h')" \
         || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-dev; } \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src

# Third-party dependencies first, read from pyproject.toml, so that this (slow) layer is
# rebuilt only when the dependency list changes, not on every source edit.  The `demo` extra
# (python-socketio) is included: compose runs the demo backend from this image.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['demo']))" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt

COPY README.md setup.py ./
COPY config ./config
COPY tracking ./tracking
COPY exporters ./exporters
COPY proxy ./proxy
COPY examples ./examples
# The compiled build (SOCKETIO_TRACE_PROXY_COMPILE=mypyc: a failed compile fails the image
# instead of falling back to pure Python), checked before it ships.
RUN SOCKETIO_TRACE_PROXY_COMPILE=mypyc /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -c "import uvloop, socketio, socketio_trace_proxy.proxy.cli, socketio_trace_proxy.examples.demo_backend" \
    && /opt/venv/bin/python -c "from socketio_trace_proxy.tracking.compiled import compiled_core; assert compiled_core()" \
    && /opt/venv/bin/socketio-trace-proxy --help >/dev/null \
    && /opt/venv/bin/pip uninstall -y -q pip setuptools wheel

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="socketio-trace-proxy" \
      org.opencontainers.image.description="Transparent Socket.IO tracing reverse proxy" \
      org.opencontainers.image.licenses="MIT"

# PATH spelled out: a base image without ENV PATH (e.g. one made by `docker import`) would
# otherwise leave only the venv on it.
ENV PATH="/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOCKET_TRACE_HEALTHCHECK_URL="http://127.0.0.1:9090/healthz"

# Fixed numeric ids so that orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 tracer \
    && useradd --system --uid 10001 --gid tracer --no-log-init \
        --home-dir /var/lib/socketio-trace-proxy --create-home --shell /usr/sbin/nologin tracer

COPY --from=builder /opt/venv /opt/venv
COPY config/default.yaml /etc/socketio-trace-proxy/default.yaml

# The working directory is writable by the proxy user: the local NDJSON exporter writes here.
WORKDIR /var/lib/socketio-trace-proxy
USER 10001:10001

EXPOSE 8080 9090

# Python, not curl: the slim base has no curl.  /healthz needs no token.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SOCKET_TRACE_HEALTHCHECK_URL'], timeout=2)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["socketio-trace-proxy"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--admin", "127.0.0.1:9090", \
     "--config", "/etc/socketio-trace-proxy/default.yaml"]
