# Wavegate's production image: one image for web (gunicorn), worker, beat and migrate.
# docker-compose.yml runs it; every setting comes from the environment (config/settings.py).
FROM python:3.11-slim

# WAVEGATE_VAR_DIR holds writable state (a volume in compose); the code in /app stays
# read-only. Static files go into the image, not the volume, so a new image never serves
# an old volume's assets. PROMETHEUS_MULTIPROC_DIR: where each process writes the counts that
# /metrics adds up, in memory, so empty whenever the container starts (compose shares one
# directory between its containers instead).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    WAVEGATE_VAR_DIR=/var/lib/wavegate \
    PROMETHEUS_MULTIPROC_DIR=/dev/shm/wavegate-metrics \
    DJANGO_STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Non-root user. The var dir is created here and owned by it, so a fresh named volume
# mounted on it inherits that ownership.
RUN groupadd --system --gid 10001 wavegate \
    && useradd --system --uid 10001 --gid wavegate --create-home --shell /usr/sbin/nologin wavegate \
    && install -d -o wavegate -g wavegate -m 0750 /var/lib/wavegate

# Dependencies before the code, so a code change reuses this layer. `--group` (PEP 735
# dependency groups) needs pip >= 25.1. Every pinned package ships a wheel: no compiler.
COPY pyproject.toml ./
RUN pip install --upgrade "pip>=25.1" \
    && pip install --group app

COPY . .

# Collect static files with hashed names (WhiteNoise's manifest storage). The secret key is
# a throw-away for this command only; without one, settings would generate a key and leave
# it in the image's var dir.
RUN DJANGO_SECRET_KEY=collectstatic-build-only DJANGO_STATIC_MANIFEST=true \
    python manage.py collectstatic --noinput

USER wavegate

EXPOSE 8000

# gthread workers (threads > 1); the heartbeat file on tmpfs; access log to stdout. The
# control socket is unused, so it is off. config/gunicorn.py: the hooks /metrics needs.
CMD ["gunicorn", "config.wsgi:application", \
     "--config", "python:config.gunicorn", \
     "--bind", "0.0.0.0:8000", \
     "--workers", "3", "--threads", "4", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-", \
     "--no-control-socket"]
