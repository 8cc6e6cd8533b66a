"""Django settings: every value comes from the environment (django-environ).

Development gets safe defaults (SQLite and a filesystem Celery transport under ``var/``); a
production configuration (``DJANGO_DEBUG=false``) refuses to start without a secret key and
allowed hosts, so a misconfigured deploy fails loudly at start rather than running insecurely.
"""

import base64
from datetime import timedelta
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

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
# What Django's own check (security.W009) asks of a key, and words that mark a placeholder.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_DISTINCT_CHARACTERS = 5
SECRET_KEY_PLACEHOLDER_WORDS = ("insecure", "change-me", "changeme")


def _secret_key_weakness(key: str) -> str | None:
    """Why ``key`` must not sign production sessions, or None."""
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"is too short ({len(key)} characters; use at least {SECRET_KEY_MIN_LENGTH})"
    if len(set(key)) < SECRET_KEY_MIN_DISTINCT_CHARACTERS:
        return f"has fewer than {SECRET_KEY_MIN_DISTINCT_CHARACTERS} different characters"
    if key == DEVELOPMENT_SECRET_KEY:
        return "is the development key"
    placeholder = next((word for word in SECRET_KEY_PLACEHOLDER_WORDS if word in key.lower()), None)
    if placeholder:
        return f"contains {placeholder!r}: it looks like a placeholder"
    return None


if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
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
    if weakness := _secret_key_weakness(SECRET_KEY):
        raise ImproperlyConfigured(
            f"DJANGO_DEBUG=false refuses this DJANGO_SECRET_KEY: it {weakness}. Make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )

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
    "core.logcontext.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.middleware.RejectNulCharactersMiddleware",
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
            "BACKEND": "core.cache.RedisCache",  # Django's, keeping one Redis client per pool (core/cache.py)
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

# Sessions are read from the cache (Redis in production; the shared file cache or, in tests, locmem
# otherwise) and written through to the database: a logged-in request costs no session query, and a
# cache flush logs nobody out. A restore forgets the cached copies (core/sessions.py).
SESSION_ENGINE = env.str("SESSION_ENGINE", default="django.contrib.sessions.backends.cached_db")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Security -----------------------------------------------------------------------------------
# A proxy that terminates TLS forwards plain http and says what the client used in X-Forwarded-Proto.
# Only such a proxy (one that sets or strips the header) makes it true: trusted only when told.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
# Production is HTTPS only: plain http is redirected, and browsers are told (HSTS, sent over HTTPS
# only) to use nothing else for a year, subdomains included. Preloading into browsers is a decision
# that is hard to undo, so it is asked for (DJANGO_HSTS_PRELOAD), not assumed; while it is off,
# `check --deploy` is told not to suggest it. Health checks come over plain http from inside.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# The schema (/api/schema/) and its docs (/api/docs/) describe every endpoint: for logged-in users
# unless opened to anyone.
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=False)

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser with a nesting limit and no NUL characters (core/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
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
    # Options flow's direction (bullish/bearish) shares its field name with other enums; an order's
    # status is one choice set shared by several fields (the order's, its events' from/to status).
    "ENUM_NAME_OVERRIDES": {
        "OptionsDirectionEnum": "sentiment.models.Direction",
        "OrderStatusEnum": "trading.models.orders.OrderStatus",
        # BUY/SELL of fills and orders, apart from options prints' side (sentiment).
        "TradeSideEnum": "trading.models.executions.Side",
    },
}

# --- Logins: brute-force lockout (django-axes) --------------------------------------------------
# Kept in one block, apart from the security settings above. Every password check goes through
# django.contrib.auth.authenticate() with the request (the login page, the admin's, DRF's
# BasicAuthentication if it is ever enabled): AxesStandaloneBackend, first, refuses a locked-out
# client before any password is checked, every failure is recorded (AccessAttempt), and the middleware,
# last, answers a refused login with the lockout page. API tokens and existing sessions are not
# passwords and are not affected. Tests log in with force_login (client.login() passes no request,
# which the backend refuses).
INSTALLED_APPS.append("axes")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
_lockout_minutes = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
if AXES_FAILURE_LIMIT < 1 or _lockout_minutes < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be at least 1")
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes)
# Username OR address, each counted on its own over the cool-off window: a username is locked after
# LOGIN_FAILURE_LIMIT failures from any mix of addresses (one account guessed from many addresses),
# and an address after LOGIN_FAILURE_LIMIT failures over any mix of usernames (password spraying
# from one address). The combination [["username", "ip_address"]] would stop neither of these, only
# one address guessing one account. The price: whoever knows a username can keep it locked out, and
# the people behind one address (an office, or everyone when the proxy setting below is wrong) share
# one count. Staff lift a lock in the admin (Access attempts, "Unlock") or with manage.py axes_reset_*.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True  # a successful login deletes the failures of its username and address
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# A permanent record of every failed login (AccessAttempt rows go at unlock, success or cool-off).
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# axes' admin pages are registered by core/admin.py, with the "Unlock" action and real lock status.
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False  # no "AXES: BEGIN" banner on every manage.py command; lockouts are still logged
# The client's address. Only REMOTE_ADDR unless the app is told it sits behind a reverse proxy:
# X-Forwarded-For is written by the client too, so trusting it otherwise would let an attacker pick a
# fresh address per attempt. Behind one proxy that appends the address it saw (nginx's
# $proxy_add_x_forwarded_for, Caddy, Traefik, most load balancers), the right-most entry is the
# only one the client cannot forge: proxy count 0 means "no further proxy listed after the client",
# i.e. take the last entry, and non-strict keeps that rule when the client sent entries of its own.
if BEHIND_PROXY:  # read once with the security settings above
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    AXES_IPWARE_PROXY_COUNT = 0
    IPWARE_STRICT = False
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
    AXES_IPWARE_PROXY_COUNT = None

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
# Workers log through LOGGING above (format, and the task/account/run fields), not Celery's own setup.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
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

# --- Backups ------------------------------------------------------------------------------------
# `manage.py backup` and the "Backup" periodic task write here; rotation deletes only files it made.
BACKUP_DIR = BASE_DIR / env.str("BACKUP_DIR", default=str(VAR_DIR / "backups"))  # relative: from the project root
# Fernet keys, comma-separated: the first encrypts new backups, every one is tried to decrypt (so a
# key can be rotated). Empty: backups are not encrypted. A lost key makes its backups unreadable.
BACKUP_ENCRYPTION_KEY = env.str("BACKUP_ENCRYPTION_KEY", default="")
for _key in filter(None, (k.strip() for k in BACKUP_ENCRYPTION_KEY.split(","))):
    # The shape of a Fernet key (32 bytes, url-safe base64), checked here so a bad one stops the start.
    try:
        _valid = len(base64.urlsafe_b64decode(_key.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError):
        _valid = False
    if not _valid:
        raise ImproperlyConfigured(
            "BACKUP_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated; "
            'make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
# Grandfather-father-son rotation after each backup: the newest backup of each of the last N days,
# weeks and months that have one (UTC) is kept, everything older goes.
BACKUP_KEEP_DAILY = env.int("BACKUP_KEEP_DAILY", default=7)
BACKUP_KEEP_WEEKLY = env.int("BACKUP_KEEP_WEEKLY", default=4)
BACKUP_KEEP_MONTHLY = env.int("BACKUP_KEEP_MONTHLY", default=12)
if min(BACKUP_KEEP_DAILY, BACKUP_KEEP_WEEKLY, BACKUP_KEEP_MONTHLY) < 0:
    raise ImproperlyConfigured("BACKUP_KEEP_DAILY, BACKUP_KEEP_WEEKLY and BACKUP_KEEP_MONTHLY cannot be negative")

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
# Options flow from IBKR (OPTIONS_FLOW_SOURCE=broker): per underlying, the nearest expiries x the strikes
# nearest the money x calls and puts; at most IBKR_OPTIONS_MAX_CONTRACTS a poll, streamed
# IBKR_MARKET_DATA_LINES at a time (IBKR's allowance is 100 lines, shared with TWS).
IBKR_OPTIONS_EXPIRIES = env.int("IBKR_OPTIONS_EXPIRIES", default=2)
IBKR_OPTIONS_STRIKES = env.int("IBKR_OPTIONS_STRIKES", default=4)
IBKR_OPTIONS_MAX_CONTRACTS = env.int("IBKR_OPTIONS_MAX_CONTRACTS", default=200)
IBKR_MARKET_DATA_LINES = env.int("IBKR_MARKET_DATA_LINES", default=40)
# 1 live (needs the OPRA subscription), 3 live where subscribed and delayed otherwise (recorded as delayed).
IBKR_OPTIONS_MARKET_DATA_TYPE = env.int("IBKR_OPTIONS_MARKET_DATA_TYPE", default=3)
IBKR_OPTIONS_TICK_WAIT = env.float("IBKR_OPTIONS_TICK_WAIT", default=3.0)
if IBKR_OPTIONS_MARKET_DATA_TYPE not in {1, 2, 3, 4}:
    raise ImproperlyConfigured("IBKR_OPTIONS_MARKET_DATA_TYPE must be 1, 2, 3 or 4")
if min(IBKR_OPTIONS_EXPIRIES, IBKR_OPTIONS_STRIKES, IBKR_OPTIONS_MAX_CONTRACTS, IBKR_MARKET_DATA_LINES) < 1:
    raise ImproperlyConfigured(
        "IBKR_OPTIONS_EXPIRIES, IBKR_OPTIONS_STRIKES, IBKR_OPTIONS_MAX_CONTRACTS and IBKR_MARKET_DATA_LINES "
        "must be at least 1"
    )
# Longest a historical-data request waits for a pacing slot (core.brokers.pacing) before its work is
# left for the next run.
IBKR_PACING_MAX_WAIT = env.float("IBKR_PACING_MAX_WAIT", default=30.0)

# Demo mode: the simulated broker's state walks forward as time passes.
DEMO_MODE = env.bool("DEMO_MODE", default=False)
# BROKER=ibkr talks to the IB Gateway simulator (manage.py ibgateway_sim) serving BROKER_STATE_FILE, as
# `make run BROKER=ibkr` sets up: the demo tick then moves that file forward too.
IBKR_GATEWAY_SIM = env.bool("IBKR_GATEWAY_SIM", default=False)

# --- Live: the event listener (manage.py ibkr_listen) ------------------------------------------
# A burst of events for one account is one ingest: work goes out once the account's events have been
# quiet this long, or this long after the first one at most.
LIVE_DEBOUNCE_SECONDS = env.float("LIVE_DEBOUNCE_SECONDS", default=1.0)
LIVE_DEBOUNCE_MAX_SECONDS = env.float("LIVE_DEBOUNCE_MAX_SECONDS", default=5.0)
# The listener refreshes its stored connection state this often; three missed beats read "not listening".
LIVE_HEARTBEAT_SECONDS = env.int("LIVE_HEARTBEAT_SECONDS", default=10)
# How often the simulated broker's state file is looked at (BROKER=simulated).
LIVE_WATCH_INTERVAL = env.float("LIVE_WATCH_INTERVAL", default=0.5)
# The listener's own IBKR client id; 0 or unset: borrowed from IBKR_CLIENT_IDS for as long as it runs.
# IB Gateway pushes other clients' fills to the master API client only: set the gateway's "Master API
# client ID" to this id to hear fills placed elsewhere at once (position updates come regardless).
IBKR_LISTEN_CLIENT_ID = env.int("IBKR_LISTEN_CLIENT_ID", default=0)

# --- Alerts -------------------------------------------------------------------------------------
ALERT_MIN_INTERVAL = env.int("ALERT_MIN_INTERVAL", default=300)  # seconds between two of a kind per account
ALERT_SYNC_FAILURES = env.int("ALERT_SYNC_FAILURES", default=3)  # failed runs in a row that raise an alert
ALERT_DELIVERY_RETRIES = env.int("ALERT_DELIVERY_RETRIES", default=5)
ALERT_RETRY_BASE_SECONDS = env.int("ALERT_RETRY_BASE_SECONDS", default=30)  # doubled at every retry
ALERT_HTTP_TIMEOUT = env.float("ALERT_HTTP_TIMEOUT", default=10.0)
ALERT_TELEGRAM_API = env.str("ALERT_TELEGRAM_API", default="https://api.telegram.org")
ALERT_EMAIL_FROM = env.str("ALERT_EMAIL_FROM", default="alerts@localhost")
# EMAIL_URL: smtp://user:password@host:587 (smtp+tls://, consolemail:// ...); the console by default.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))

# --- Position sync ------------------------------------------------------------------------------
POSITION_SYNC_ENABLED = env.bool("POSITION_SYNC_ENABLED", default=True)
POSITION_SYNC_MARK_MISSING_AS_CLOSED = env.bool("POSITION_SYNC_MARK_MISSING_AS_CLOSED", default=False)
POSITION_SYNC_ON_TRADE = env.bool("POSITION_SYNC_ON_TRADE", default=True)
POSITION_SYNC_STALE_AFTER = env.int("POSITION_SYNC_STALE_AFTER", default=900)

# --- Market data ---------------------------------------------------------------------------------
# How long bars are kept per size: "1m=30d,5m=90d,15m=180d,1h=730d,1d=forever" (marketdata.retention).
MARKETDATA_RETENTION = env.str("MARKETDATA_RETENTION", default="1m=30d,5m=90d,15m=180d,1h=730d,1d=forever")
# A quote older than this (seconds) is stale while the market is open.
QUOTE_STALE_AFTER = env.int("QUOTE_STALE_AFTER", default=60)
# How far back a watched instrument without a backfill start is filled, per bar size (days).
MARKETDATA_BACKFILL_DAYS = env.str("MARKETDATA_BACKFILL_DAYS", default="1m=5,5m=14,15m=30,1h=90,1d=365")
# A stored daily exchange rate converts amounts of its day and of up to this many days after it (weekends,
# holidays, a broker that was down); an amount with no rate that recent has no base-currency value.
FX_RATE_MAX_AGE_DAYS = env.int("FX_RATE_MAX_AGE_DAYS", default=7)

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

# --- Option Greeks (the Black-Scholes-Merton fallback when the broker has no model values) ----------
RISK_FREE_RATE = Decimal(env.str("RISK_FREE_RATE", default="0.04"))  # annualised, continuously compounded
# Known dividend yields per underlying symbol, "SPY=0.012,AAPL=0.005" (annualised); any other is 0.
GREEKS_DIVIDEND_YIELDS = {
    symbol.upper(): Decimal(value) for symbol, value in env.dict("GREEKS_DIVIDEND_YIELDS", default={}).items()
}

# --- Orders and risk checks (domain-rules.md "Orders and risk checks") ----------------------------
# Nothing places a real order by accident: LIVE accounts' orders reach the broker only with this on
# and a connection that is not read-only (IBKR_READONLY=false); PAPER accounts are filled by the paper engine.
LIVE_TRADING_ENABLED = env.bool("LIVE_TRADING_ENABLED", default=False)
MAX_ORDER_QUANTITY = Decimal(env.str("MAX_ORDER_QUANTITY", default="10000"))
MAX_PRICE_DEVIATION = Decimal(env.str("MAX_PRICE_DEVIATION", default="0.10"))  # fraction of the quote
MAX_POSITION_PCT = Decimal(env.str("MAX_POSITION_PCT", default="0.10"))  # fraction of net liquidation
CASH_ACCOUNT_BLOCK_GFV = env.bool("CASH_ACCOUNT_BLOCK_GFV", default=True)
MAX_TRADES_PER_DAY = env.int("MAX_TRADES_PER_DAY", default=0)  # 0: unlimited
MAX_TRADES_PER_WEEK = env.int("MAX_TRADES_PER_WEEK", default=0)  # 0: unlimited
PAPER_COMMISSION_PER_SHARE = Decimal(env.str("PAPER_COMMISSION_PER_SHARE", default="0.005"))
PAPER_COMMISSION_MIN = Decimal(env.str("PAPER_COMMISSION_MIN", default="1.00"))
PAPER_COMMISSION_MAX_PCT = Decimal(env.str("PAPER_COMMISSION_MAX_PCT", default="0.01"))  # of the trade value
PDT_MIN_EQUITY = Decimal(env.str("PDT_MIN_EQUITY", default="25000"))
# --- Signals and paper trades: intraday trades still open this many minutes before the close are closed
EOD_CLOSE_MINUTES = env.int("EOD_CLOSE_MINUTES", default=5)
# The trade record's bot_version: the product's version a deployment runs.
TRADING_BOT_VERSION = env.str("TRADING_BOT_VERSION", default="1.0.0")

# --- Retention (manage.py prune and the daily "Retention" task): days kept; 0 keeps forever -------
RETENTION_SYNC_RUNS_DAYS = env.int("RETENTION_SYNC_RUNS_DAYS", default=90)
RETENTION_FAILED_RUNS_DAYS = env.int("RETENTION_FAILED_RUNS_DAYS", default=365)
RETENTION_HOURLY_SNAPSHOTS_DAYS = env.int("RETENTION_HOURLY_SNAPSHOTS_DAYS", default=90)
# Alerts told to users, with their deliveries and every attempt (one still being delivered is kept).
RETENTION_ALERTS_DAYS = env.int("RETENTION_ALERTS_DAYS", default=180)
for _name in (
    "RETENTION_SYNC_RUNS_DAYS",
    "RETENTION_FAILED_RUNS_DAYS",
    "RETENTION_HOURLY_SNAPSHOTS_DAYS",
    "RETENTION_ALERTS_DAYS",
):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name} must be 0 (keep forever) or a number of days, not {globals()[_name]}")

# --- Sentiment and options flow (sentiment/, README "Sentiment") ----------------------------------
# Which sources "Sentiment ingest" runs, each with a run of its own: file, x, reddit.
SENTIMENT_SOURCES = env.list("SENTIMENT_SOURCES", default=["file"])
_unknown_sources = set(SENTIMENT_SOURCES) - {"file", "x", "reddit"}
if _unknown_sources:
    raise ImproperlyConfigured(f"SENTIMENT_SOURCES: unknown source(s) {sorted(_unknown_sources)}; use file, x, reddit")
# The embedded source (docs: sentiment-feed.md): posts and options flow, read afresh on every ingest.
SENTIMENT_FEED_FILE = env.str("SENTIMENT_FEED_FILE", default=str(VAR_DIR / "sentiment_feed.json"))
# Where "Options flow ingest" reads prints: the feed file, or the broker (BROKER's option market data).
OPTIONS_FLOW_SOURCE = env.str("OPTIONS_FLOW_SOURCE", default="file")
if OPTIONS_FLOW_SOURCE not in {"file", "broker"}:
    raise ImproperlyConfigured(f"OPTIONS_FLOW_SOURCE must be file or broker, not {OPTIONS_FLOW_SOURCE!r}")
# Credentials: a missing one disables its source (its run is SKIPPED and says so), never the start.
X_BEARER_TOKEN = env.str("X_BEARER_TOKEN", default="")
REDDIT_CLIENT_ID = env.str("REDDIT_CLIENT_ID", default="")
REDDIT_CLIENT_SECRET = env.str("REDDIT_CLIENT_SECRET", default="")
REDDIT_USER_AGENT = env.str("REDDIT_USER_AGENT", default="ibkr-record sentiment (by u/unknown)")
REDDIT_SUBREDDITS = env.list("REDDIT_SUBREDDITS", default=["wallstreetbets", "stocks", "options"])
# Longest wait for a rate limit to lift inside one run; past it the run stops, keeps what it got and
# the next run resumes.
SENTIMENT_RATE_LIMIT_MAX_WAIT = env.int("SENTIMENT_RATE_LIMIT_MAX_WAIT", default=120)
# Finance slang added to VADER's lexicon (sentiment/rules.py FINANCE_LEXICON); recorded per score.
SENTIMENT_FINANCE_LEXICON = env.bool("SENTIMENT_FINANCE_LEXICON", default=True)
# The spam rule: the same normalised text about a symbol within this many minutes counts once.
SENTIMENT_SPAM_WINDOW_MINUTES = env.int("SENTIMENT_SPAM_WINDOW_MINUTES", default=10)
# Raw posts (and their scores and mentions) are pruned after this many days; aggregates are kept.
SENTIMENT_POST_RETENTION = env.int("SENTIMENT_POST_RETENTION", default=90)
if SENTIMENT_POST_RETENTION < 0:
    raise ImproperlyConfigured("SENTIMENT_POST_RETENTION must be 0 (keep forever) or a number of days")
OPTIONS_FLOW_MIN_PREMIUM = Decimal(env.str("OPTIONS_FLOW_MIN_PREMIUM", default="100000"))
# Confluence weights per component (equal by default); a weight of 0 leaves a component out.
CONFLUENCE_WEIGHT_SENTIMENT = Decimal(env.str("CONFLUENCE_WEIGHT_SENTIMENT", default="1"))
CONFLUENCE_WEIGHT_OPTIONS_FLOW = Decimal(env.str("CONFLUENCE_WEIGHT_OPTIONS_FLOW", default="1"))
CONFLUENCE_WEIGHT_MOMENTUM = Decimal(env.str("CONFLUENCE_WEIGHT_MOMENTUM", default="1"))

# Every line carries the request id, Celery task id, account and run id when known (core.logcontext).
# text: readable on a terminal; json: one object a line for a log collector (the default in production).
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logcontext.ContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(account)s %(run_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # ib_async logs every position, portfolio row and fill at INFO; the IBKR adapter reports what matters.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "ib_async": {"level": "WARNING"}},
}
