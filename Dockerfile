# syntax=docker/dockerfile:1
# model-health-exporter container image.
#   docker build -t model-health-exporter:0.1.0 .
#   docker run --rm -p 127.0.0.1:9188:9188 -v /srv/models:/models:ro \
#     -v mhe-state:/state model-health-exporter:0.1.0
# Settings: MHE_* variables (-e) or flags after the image name, e.g.
#   docker run ... model-health-exporter:0.1.0 run --config.file=/etc/mhe/config.yml
# and the other commands: docker run ... model-health-exporter:0.1.0 validate /models
# TLS and basic auth (docs/deployment.md): mount the web config and its certificates,
# and name the file in the environment, where the HEALTHCHECK finds it too:
#   docker run ... -v /etc/model-health-exporter:/etc/mhe:ro \
#     -e MHE_WEB__CONFIG_FILE=/etc/mhe/web-config.yml model-health-exporter:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a wheel of this project and of every dependency ----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# What the build backend reads: pyproject.toml (metadata), README.md (its readme), src/.
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip wheel --wheel-dir /wheels .

# ---- runtime: the wheels installed into a slim Python, run as a non-root user ----------
FROM ${PYTHON_IMAGE} AS runtime
# One BLAS thread: the statistics are small; a thread per core would only cost memory.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels model-health-exporter \
 && groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin exporter \
 && mkdir -p /models /state \
 && chown exporter:exporter /state

# Defaults as MHE_* variables, not flags in CMD: arguments after the image name replace
# CMD and would drop them. Inside the container, listen on all interfaces; publish the
# port on the host's loopback unless Prometheus runs elsewhere.
ENV MHE_WEB__LISTEN_ADDRESS=:9188 \
    MHE_MODELS__DIRS=/models \
    MHE_STATE__DIR=/state \
    MHE_LOG__FORMAT=json

USER 10001:10001
VOLUME ["/models", "/state"]
EXPOSE 9188

# /healthz answers while the process serves (/readyz, first scan done, is for readiness);
# over TLS and through basic auth when MHE_WEB__CONFIG_FILE sets them (healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "model_health_exporter.healthcheck"]

# The daemon takes SIGTERM/SIGHUP itself and reaps no children, so no init is needed.
ENTRYPOINT ["model-health-exporter"]
CMD ["run"]
