# syntax=docker/dockerfile:1
# One image for web, worker and beat; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# pg_dump and pg_restore for `manage.py backup` / `restore` and the "Backup" periodic task (the
# worker runs it). They must be at least the server's major version.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

# Every pinned dependency ships a manylinux wheel (psycopg[binary] included): no compiler needed.
# Requirements first, so a code change does not reinstall them.
COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir -r requirements/base.txt

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY . .

# Static files are part of the image. DEBUG=false selects whitenoise's manifest storage, as at
# run time; the secret and hosts are throwaway values that exist only for this command, and
# VAR_DIR points away from /app so the build leaves no SQLite file or queue folders in the image.
RUN DJANGO_ENV_FILE=/nonexistent DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-build-only-throwaway-key-that-signs-nothing-at-all \
        DJANGO_ALLOWED_HOSTS=localhost VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var

# The code stays root-owned (read-only for the app). var/ is the app's only writable folder;
# var/broker and var/backups are the mount points of the broker-state and backups volumes: a new
# named volume copies its folder's ownership, so it starts out writable by the app user.
RUN mkdir -p /app/var/broker /app/var/backups \
    && chown -R app:app /app/var \
    && chmod 0755 /app/docker/entrypoint.sh

USER app

EXPOSE 8000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
