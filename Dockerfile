# syntax=docker/dockerfile:1
# The modelops operator image: ghcr.io/modelops/modelops-operator:<version>, entrypoint `modelops run`.
# Runs as a non-root user with a read-only root filesystem: only /tmp must be writable (an emptyDir in the chart).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/modelops
COPY pyproject.toml README.md* ./
COPY operator/ operator/
# Only the runtime dependencies (no sandbox or dev extras); byte-code is compiled now because the
# root filesystem is read-only at run time.
RUN /opt/modelops/bin/pip install . \
    && /opt/modelops/bin/python -m compileall -q /opt/modelops

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="modelops-operator" \
      org.opencontainers.image.description="Kubernetes operator for the lifecycle of ML models" \
      org.opencontainers.image.source="https://github.com/modelops/modelops" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 modelops \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin modelops
COPY --from=build /opt/modelops /opt/modelops
ENV PATH=/opt/modelops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /tmp
# 8080: the operator's /metrics; 8081: /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["modelops", "run"]
