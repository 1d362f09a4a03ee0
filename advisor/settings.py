"""One settings module. Production-safe defaults; development is asked for with DEBUG=true (`make run` does).

With no DATABASE_URL the app runs on SQLite, and with no REDIS_URL Celery runs tasks in-process, so a first
run needs no services. Secrets fail loudly when DEBUG is off and they are missing.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets admin and form classes be subscripted for the type checker (ModelAdmin[Team]) at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_secret(name: str, dev_default: str) -> str:
    """Read NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    value = os.environ.get(name)
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when DEBUG is off")


def database_from_url(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"DATABASE_URL must be a postgres:// URL, got scheme {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "advisor",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }


def proxy_ssl_header(raw: str) -> tuple[str, str] | None:
    """ "X-Forwarded-Proto: https" (what the TLS proxy in front sets) as Django's SECURE_PROXY_SSL_HEADER."""
    if not raw:
        return None
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or not value.strip():
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER must look like 'X-Forwarded-Proto: https', got {raw!r}"
        )
    return "HTTP_" + name.strip().upper().replace("-", "_"), value.strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "apps.accounts",
    "apps.catalog",
    "apps.workloads",
    "apps.benchmarks",
    "apps.planner",
    "apps.manifests",
]

MIDDLEWARE = [
    "advisor.middleware.RequestIdMiddleware",
    "advisor.middleware.ApiErrorMiddleware",
    "advisor.middleware.InputHardeningMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the response of a sign-in that django-axes refused (see advisor.security).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "advisor.urls"
WSGI_APPLICATION = "advisor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    SQLITE_PATH = Path(env_str("SQLITE_PATH", str(BASE_DIR / "var" / "advisor.sqlite3")))
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a sign-in from a locked-out address or username before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "staticfiles")))
# In development WhiteNoise serves straight from the finders; production runs collectstatic into STATIC_ROOT.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A workload body is small JSON; anything near this size is a mistake and gets a 400 naming the body.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Uploaded traffic CSVs and request logs are parsed as streams in constant memory; a body declaring more than
# this is refused before a byte of it is read. Larger logs go through `manage.py import_workload --log`.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 100 * 1024 * 1024)

# HTTPS. The production stack serves plain HTTP on 127.0.0.1:8000 behind a TLS proxy, which must send the header
# named in SECURE_PROXY_SSL_HEADER ("X-Forwarded-Proto: https"); /healthz/ stays reachable over HTTP for probes.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(env_str("SECURE_PROXY_SSL_HEADER"))
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Hops of trusted proxies in front of the app: the client address is taken that far from the right of
# X-Forwarded-For (for throttling and sign-in lockouts). 0: REMOTE_ADDR, as nothing in front can be trusted.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Guessing passwords (django-axes): after AXES_FAILURE_LIMIT failed sign-ins from one address, or for one
# username, both the login page and the token endpoint refuse that address or username for AXES_COOLOFF_MINUTES
# (429 with a message saying so); a successful sign-in clears the count.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "advisor.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "advisor.security.client_ip"
AXES_VERBOSE = False

# API tokens (POST /api/v1/auth/token/) stop working this long after they were issued; asking again issues a new
# one once the old one expired, and DELETE on the same URL revokes it at once.
API_TOKEN_TTL = timedelta(hours=env_int("API_TOKEN_TTL_HOURS", 30 * 24))
# Per client, over a sliding window: anonymous requests per address, authenticated ones per user, and sign-ins
# for tokens per address. Raise them (or set THROTTLE_*) for load tests.
API_THROTTLE_RATES = {
    "anon": env_str("THROTTLE_ANON", "120/min"),
    "user": env_str("THROTTLE_USER", "1200/min"),
    "auth": env_str("THROTTLE_AUTH", "20/min"),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "advisor.security.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["advisor.security.AnonThrottle", "advisor.security.UserThrottle"],
    # 0: the throttles key on REMOTE_ADDR; DRF's default (None) would trust a client's own X-Forwarded-For.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_PERMISSION_CLASSES": ["advisor.security.IsAuthenticatedWithinAnonRate"],
    "DEFAULT_PAGINATION_CLASS": "advisor.rest.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "advisor.schema.AutoSchema",
    "EXCEPTION_HANDLER": "advisor.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["advisor.rest.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "LLM deployment advisor API",
    "DESCRIPTION": "Workloads, catalog, benchmarks, plans and manifests for self-hosted LLM inference.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status` with different choices; name each set rather than hash-suffixed names.
    "ENUM_NAME_OVERRIDES": {
        "BenchmarkRunStatusEnum": "apps.benchmarks.models.RunStatus",
        "BenchmarkCandidateStatusEnum": "apps.benchmarks.models.CandidateStatus",
        "PlanStatusEnum": "apps.planner.models.PlanStatus",
    },
}

# Celery: JSON only, late acks (tasks are idempotent in the database), explicit limits. The visibility timeout
# must exceed the longest job, or Redis redelivers a benchmark that is still running.
REDIS_URL = env_str("REDIS_URL")
# Throttle counters must be shared by every web process: Redis when there is one, else this process's memory
# (the embedded default runs one process).
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "advisor",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
BENCHMARK_TIME_LIMIT_S = env_int("BENCHMARK_TIME_LIMIT_S", 2 * 3600)
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Imported by every worker at start: connects the handlers that register benchmark hosts.
CELERY_IMPORTS = ["apps.benchmarks.worker"]
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BENCHMARK_TIME_LIMIT_S + 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Requeues once, then fails, benchmark runs whose worker stopped sending heartbeats (apps/benchmarks).
    "benchmarks-reap-stale-runs": {
        "task": "apps.benchmarks.tasks.benchmark_runs_reap_stale_task",
        "schedule": 60.0,
    },
    # Fails plans left running past their time limit; sends again, then fails, plans whose message was lost.
    "planner-reap-stuck-plans": {
        "task": "apps.planner.tasks.recommendations_reap_stuck_task",
        "schedule": 60.0,
    },
}
# Planning: a plan still queued PLAN_RESEND_AFTER_S after it was requested is sent to the queue once more (its
# message may have been lost with a Redis restart); still queued after PLAN_QUEUE_TIMEOUT_S, it fails.
PLAN_RESEND_AFTER_S = env_int("PLAN_RESEND_AFTER_S", 300)
PLAN_QUEUE_TIMEOUT_S = env_int("PLAN_QUEUE_TIMEOUT_S", 1800)
# Where plans run: "celery" sends them to the default queue (the full stack); "thread" runs them in a background
# thread of the web process (the embedded default, which has no broker), so a request never waits for a plan.
PLAN_EXECUTOR = env_str("PLAN_EXECUTOR", "celery" if REDIS_URL else "thread")
if PLAN_EXECUTOR not in {"celery", "thread"}:
    raise ImproperlyConfigured(f"PLAN_EXECUTOR must be celery or thread, got {PLAN_EXECUTOR!r}")

# Benchmarks: a worker host is live while its last heartbeat is younger than BENCHMARK_WORKER_LIVE_S (workers beat
# every 30 s); a running run whose heartbeat is older than BENCHMARK_STALE_AFTER_S is requeued once, then failed.
# BENCHMARK_WORK_DIR on a worker host caches random-weight models between runs and keeps engine logs.
BENCHMARK_WORKER_LIVE_S = env_int("BENCHMARK_WORKER_LIVE_S", 90)
BENCHMARK_STALE_AFTER_S = env_int("BENCHMARK_STALE_AFTER_S", 300)
BENCHMARK_WORK_DIR = env_str("BENCHMARK_WORK_DIR", str(BASE_DIR / "var" / "bench"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every line carries the id of the request being served ("-" outside one): the id API errors answer with.
    "filters": {"request_id": {"()": "advisor.middleware.RequestIdLogFilter"}},
    "formatters": {"plain": {"format": "%(levelname)s %(name)s [request %(request_id)s] %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": "plain"}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
