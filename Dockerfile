# modelway's container image: `docker build -t modelway:0.1.0 .` from the repository root.
#
#   docker run --rm -p 8080:8080 modelway:0.1.0          # the default config: the mock model
#   docker run --rm -p 8080:8080 -e OPENAI_API_KEY -v "$PWD/gateway.yaml:/etc/modelway/gateway.yaml:ro" modelway:0.1.0
#
# Build arguments: PYTHON_IMAGE (the base, a Debian-based Python 3.12+ image) and EXTRAS (pip
# extras of modelway, e.g. `--build-arg EXTRAS=ner` for the PII guard's PERSON/LOCATION model).
# tests/test_deploy.py parses this file: keep USER numeric, HEALTHCHECK and CMD in exec form.
ARG PYTHON_IMAGE=python:3.12-slim

# ---- build: install modelway and its dependencies into a virtualenv ----------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/modelway
WORKDIR /src
# Only what the package is built from (see .dockerignore), so editing tests or docs does not
# invalidate the dependency layer.
COPY pyproject.toml setup.cfg README.md ./
COPY core/ core/
COPY plugins/ plugins/
COPY addons/ addons/
COPY config/ config/
RUN /opt/modelway/bin/pip install ".${EXTRAS:+[$EXTRAS]}" \
 && /opt/modelway/bin/modelway --version

# ---- runtime: the virtualenv, the image's config and an unprivileged user ----------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelway" \
      org.opencontainers.image.description="A plugin-based AI gateway on mitmproxy" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can check it and volumes can be
# prepared for it (the Helm chart and deploy/k8s use the same numbers).
RUN groupadd --gid 10001 modelway \
 && useradd --uid 10001 --gid 10001 --no-log-init --create-home --home-dir /home/modelway \
        --shell /usr/sbin/nologin modelway \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/modelway/ca \
 && install -d -m 0755 /etc/modelway

COPY --from=build /opt/modelway /opt/modelway
# The packaged default configuration (mock model; OpenAI when OPENAI_API_KEY is set), with the
# container's listen address, port and CA directory. Mount your own over it.
COPY deploy/docker/gateway.yaml /etc/modelway/gateway.yaml

# MODELWAY_PORT is read by the config above and by the HEALTHCHECK, so both follow one value.
# MODELWAY_CA_DIR is the forward proxy's CA directory (the volume below).
ENV PATH=/opt/modelway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MODELWAY_PORT=8080 \
    MODELWAY_CA_DIR=/var/lib/modelway/ca

# Forward mode keeps its CA here: a volume, so the CA that clients trust survives the container.
VOLUME ["/var/lib/modelway/ca"]

USER 10001:10001
WORKDIR /home/modelway
EXPOSE 8080

# Slim images have no curl: the check uses Python's standard library, bypassing any HTTP(S)_PROXY
# the gateway itself may be given for its upstream calls. /healthz answers 200 while it serves.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('MODELWAY_PORT', '8080'), timeout=4)"]

# SIGTERM stops accepting and lets in-flight requests finish within
# gateway.shutdown_grace_seconds (30 s by default): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["modelway"]
CMD ["run", "-c", "/etc/modelway/gateway.yaml", "--host", "0.0.0.0"]
