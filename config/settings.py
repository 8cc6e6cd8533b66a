"""Django settings: every value comes from the environment (django-environ).

Development gets safe defaults (SQLite and a filesystem Celery transport under ``var/``); a
production configuration (``DJANGO_DEBUG=false``) refuses to start without a secret key and
allowed hosts, so a misconfigured deploy fails loudly at start rather than running insecurely.
"""

from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env"))
if Path(env_file).is_file():
    environ.Env.read_env(env_file)

# Local state of a one-machine run: SQLite file, Celery's filesystem queue, the broker state file.
VAR_DIR = BASE_DIR / env.str("VAR_DIR", default="var")  # a relative path is taken from the project root

DEBUG = env.bool("DJANGO_DEBUG", default=True)

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-secret-key-change-me")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
else:
    # No defaults in production: a missing value must stop the process at start.
    try:
        SECRET_KEY = env.str("DJANGO_SECRET_KEY")
        ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            f"DJANGO_DEBUG=false requires DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS: {exc}"
        ) from exc
    if not SECRET_KEY or not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_DEBUG=false requires non-empty DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS")

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

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
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "simple_history",
    "core",
    "marketdata",
    "trading",
    "portfolio",
    "sentiment",
]
# Demo data and benchmarks write made-up users and data: offered only when developing or asked for.
DEVTOOLS = env.bool("DEVTOOLS", default=DEBUG)
if DEVTOOLS:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"

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
                "portfolio.context_processors.exchange",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL plus a busy timeout lets web, worker and beat share one SQLite file without
    # "database is locked" errors; IMMEDIATE makes writers queue instead of deadlocking.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The run journal (core.SyncRun) records runs per broker account. Core sits below the app that owns
# accounts, so it names the model through settings, as Django's admin log names AUTH_USER_MODEL.
RUN_JOURNAL_ACCOUNT_MODEL = "trading.Account"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="ibkr"),
        }
    }
else:
    # Web, worker and beat are separate processes: a file cache is what they can all share.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Trade dates, settlement dates and day-trade windows are computed in the exchange's zone.
EXCHANGE_TIME_ZONE = env.str("EXCHANGE_TIME_ZONE", default="America/New_York")

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "config.staticfinders.VendoredPackageFinder",  # plotly.min.js from the pinned plotly package
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=100),
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Decimals travel as strings so no client ever sees a float.
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_RATES": {"sync": env.str("API_SYNC_THROTTLE", default="30/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "IBKR system of record API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the pinned sidecar package: the docs work offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    # The embedded transport needs its folders; creating them here keeps `make run` one command.
    _queue_dir.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "processed").mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Broadcast (pidbox) exchanges: without this kombu writes ./control in the working directory.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "store_processed": False,
    }
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
# Redis hands a task that was delivered and never acknowledged (its worker was killed) to another
# worker after the visibility timeout; kombu's default is an hour. A task still running after it is
# delivered a second time, so it must exceed the task time limit; the single-flight locks and the run
# journal make a second delivery harmless anyway. kombu looks for such tasks every
# unacked_restore_interval x unacked_restore_throttle seconds (100 by default): a tenth of the timeout.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 60)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "redis+socket://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": max(1, min(60, CELERY_VISIBILITY_TIMEOUT // 10)),
        "unacked_restore_throttle": 1,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# How often beat re-reads the schedule from the database (staff edits take effect within this).
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("CELERY_BEAT_MAX_LOOP_INTERVAL", default=5)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A single-flight lock must outlive the longest run of the task that holds it.
SINGLE_FLIGHT_LOCK_TTL = env.int("SINGLE_FLIGHT_LOCK_TTL", default=CELERY_TASK_TIME_LIMIT + 60)
# A run started for a worker (API, admin, dashboard) that no worker has taken up after this long is
# abandoned (its task was lost); a run whose holder died is abandoned at once (core.journal).
SYNC_RUN_QUEUE_TIMEOUT = env.int("SYNC_RUN_QUEUE_TIMEOUT", default=SINGLE_FLIGHT_LOCK_TTL)

# --- Broker -------------------------------------------------------------------------------------
BROKER = env.str("BROKER", default="simulated")
BROKER_STATE_FILE = env.str("BROKER_STATE_FILE", default=str(VAR_DIR / "broker_state.json"))
IBKR_HOST = env.str("IBKR_HOST", default="127.0.0.1")
IBKR_PORT = env.int("IBKR_PORT", default=4002)
IBKR_CLIENT_ID = env.int("IBKR_CLIENT_ID", default=17)


def _client_ids(text: str) -> list[int]:
    """``17-24`` or ``17,18,30``: the ids this deployment may use, one per live connection."""
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    if not ids:
        raise ImproperlyConfigured("IBKR_CLIENT_IDS names no client id")
    return ids


# Every call borrows a free id from this pool (default: IBKR_CLIENT_ID alone); give at least as many
# ids as processes that talk to IBKR at once (web + worker concurrency).
IBKR_CLIENT_IDS = _client_ids(env.str("IBKR_CLIENT_IDS", default=str(IBKR_CLIENT_ID)))
IBKR_ACCOUNT = env.str("IBKR_ACCOUNT", default="")
IBKR_TIMEOUT = env.float("IBKR_TIMEOUT", default=15.0)
IBKR_READONLY = env.bool("IBKR_READONLY", default=True)

# Demo mode: the simulated broker's state walks forward as time passes.
DEMO_MODE = env.bool("DEMO_MODE", default=False)

# --- Position sync ------------------------------------------------------------------------------
POSITION_SYNC_ENABLED = env.bool("POSITION_SYNC_ENABLED", default=True)
POSITION_SYNC_MARK_MISSING_AS_CLOSED = env.bool("POSITION_SYNC_MARK_MISSING_AS_CLOSED", default=False)
POSITION_SYNC_ON_TRADE = env.bool("POSITION_SYNC_ON_TRADE", default=True)
POSITION_SYNC_STALE_AFTER = env.int("POSITION_SYNC_STALE_AFTER", default=900)

# --- Executions ledger --------------------------------------------------------------------------
LOT_MATCHING = env.str("LOT_MATCHING", default="fifo")  # fifo (IBKR's default tax-lot method) or average
DAY_TRADE_COUNTING = env.str("DAY_TRADE_COUNTING", default="opening")  # opening (conservative) or direction
if LOT_MATCHING not in {"fifo", "average"}:
    raise ImproperlyConfigured(f"LOT_MATCHING must be fifo or average, not {LOT_MATCHING!r}")
if DAY_TRADE_COUNTING not in {"opening", "direction"}:
    raise ImproperlyConfigured(f"DAY_TRADE_COUNTING must be opening or direction, not {DAY_TRADE_COUNTING!r}")

# --- Risk thresholds (crossing one writes a RiskEvent once per crossing) --------------------------
RISK_MAX_DRAWDOWN = Decimal(env.str("RISK_MAX_DRAWDOWN", default="0.20"))  # fraction of the TWR index peak
RISK_MAX_CONSECUTIVE_LOSSES = env.int("RISK_MAX_CONSECUTIVE_LOSSES", default=5)
RISK_DAILY_LOSS_PCT = Decimal(env.str("RISK_DAILY_LOSS_PCT", default="0.03"))  # fraction of net liquidation

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
