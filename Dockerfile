# The web image (gunicorn, migrations, management commands): no torch, no CUDA, no OCR.
# The GPU render worker has its own image: Dockerfile.worker.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EVALSITE_DATA_DIR=/data MEDIA_ROOT=/data/media

RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 evalsite \
    && mkdir -p /data && chown evalsite /data

WORKDIR /app
# The hashed lock (scripts/lock.sh writes it from requirements.txt): every file is checked.
COPY requirements.lock .
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY --chown=evalsite . .
USER evalsite
# The static set with its manifest, built by the same script the production smoke test runs.
RUN scripts/build_static.sh
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --retries=10 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["gunicorn", "evalsite.wsgi", "-b", "0.0.0.0:8000", "-w", "4", "--threads", "4", "--access-logfile", "-", "--logger-class", "evalsite.logmask.GunicornLogger"]
