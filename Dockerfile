# The web app, the Celery worker and beat share this image. Torch is not in it: GPU hosts run `workers/`
# from the worker extra (pip install '.[worker]') or the standalone CLI.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DEBUG=false
WORKDIR /app

COPY pyproject.toml README.md ./
COPY advisor advisor
COPY apps apps
COPY workers workers
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install . && useradd --system --uid 10001 advisor \
    && python -m compileall -q advisor apps workers \
    && SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && chown -R advisor /app
USER advisor
EXPOSE 8000
CMD ["gunicorn", "advisor.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", "--access-logfile", "-"]
