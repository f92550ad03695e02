# One image for the web process and the GPU workers.
# torch==2.13.0 from PyPI on Linux x86_64 is the CUDA build (its CUDA libraries come as
# wheels), so the same image renders on any host with the NVIDIA container toolkit.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    EVALSITE_DATA_DIR=/data MEDIA_ROOT=/data/media HF_HOME=/models

RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl \
    tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim tesseract-ocr-deu fonts-dejavu-core fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 evalsite \
    && mkdir -p /data /models && chown evalsite /data /models

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=evalsite . .
RUN DJANGO_SECRET_KEY=build-only EVALSITE_DATA_DIR=/tmp/build python manage.py collectstatic --noinput -v0

USER evalsite
EXPOSE 8000
CMD ["gunicorn", "evalsite.wsgi", "-b", "0.0.0.0:8000", "-w", "4", "--threads", "4", "--access-logfile", "-", "--logger-class", "evalsite.logmask.GunicornLogger"]
