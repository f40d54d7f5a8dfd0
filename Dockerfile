# migration-guard: `docker build -t migration-guard .` then
# `docker run --env-file .env -p 3000:3000 migration-guard` (see README: Running in production).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY adapters ./adapters
RUN pip install . && rm -rf /src

# Never run as root. The working directory is where the default SQLite file would live; mount a
# volume there, or (for production) set DATABASE_URL to PostgreSQL.
RUN useradd --create-home --uid 10001 guard
USER guard
WORKDIR /home/guard

EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '3000')}/healthz\", timeout=4)"

CMD ["migration-guard", "serve"]
