# syntax=docker/dockerfile:1
# CityStat indicators service image. Build from the repository root:
#   docker build -f deploy/docker/indicators.Dockerfile -t citystat/indicators:dev .
# One image, two processes: `indicators-api` (default CMD: migrate, then uvicorn on 8002)
# and `indicators-worker` (outbox relay, consumers, schedulers; also `migrate` and `replay --since`).

# ---- builder: a virtualenv with the locked production dependencies and the two workspace packages
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /src

# Dependencies first (their own layer, rebuilt only when the lock changes): the production
# subset of requirements.lock, installed hash-checked with no resolution at all.
COPY requirements.lock ./
COPY deploy/docker/prod_requirements.py deploy/docker/prod_requirements.py
RUN python deploy/docker/prod_requirements.py requirements.lock citystat-common citystat-indicators > /tmp/prod.lock \
    && uv venv /opt/venv --python /usr/local/bin/python3.11 \
    && uv pip install --python /opt/venv/bin/python --require-hashes --no-deps -r /tmp/prod.lock

# Then the code: the shared library and this service, as regular (non-editable) installs.
COPY libs/common libs/common
COPY services/indicators services/indicators
RUN uv pip install --python /opt/venv/bin/python --no-deps --no-sources ./libs/common ./services/indicators \
    && uv pip check --python /opt/venv/bin/python

# ---- runtime: the same Python base, the virtualenv, an unprivileged user, nothing else
FROM python:3.11.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="citystat-indicators" \
      org.opencontainers.image.description="CityStat indicators service (api and worker entry points)"

RUN groupadd --system --gid 10001 citystat \
    && useradd --system --uid 10001 --gid citystat --home-dir /app --no-create-home --shell /usr/sbin/nologin citystat \
    && mkdir -p /app /run/citystat/metrics \
    && chown -R citystat:citystat /app /run/citystat

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INDICATORS_HOST=0.0.0.0 \
    INDICATORS_PORT=8002 \
    LOG_FORMAT=json

WORKDIR /app
USER 10001:10001
EXPOSE 8002

# Liveness of the api; the worker's container overrides this (see docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('INDICATORS_PORT', '8002') + '/healthz', timeout=2)"]

CMD ["indicators-api"]
