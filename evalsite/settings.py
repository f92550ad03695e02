"""Settings, 12-factor: everything comes from the environment.

The defaults are the embedded, no-services mode (SQLite file, local media, a
filesystem Celery broker under ``EVALSITE_DATA_DIR``). Production sets
``DATABASE_URL`` (PostgreSQL), ``CELERY_BROKER_URL`` (Redis), ``DJANGO_SECRET_KEY``,
``DJANGO_ALLOWED_HOSTS`` and, optionally, S3 media through ``MEDIA_S3_BUCKET``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from evalsite.secret_key import HOW_TO_MAKE_ONE, secret_key_problem

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

# Files this app creates (SQLite database, logs, uploads, images, the secret key) are the owner's
# only: 0600 files, 0700 folders (issue 12: db.sqlite3 and the logs were world-readable).
os.umask(int(env.str("EVALSITE_UMASK", default="077"), 8))
DATA_DIR = Path(env.str("EVALSITE_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)


# Production mode: HTTPS-only cookies, HSTS, the HTTPS redirect, the proxy header, and a real secret key.
# docker-compose sets it; `manage.py check --deploy` is clean with it (tests/test_production_settings.py).
SECURE = env.bool("DJANGO_SECURE", default=False)


def _secret_key() -> str:
    """An explicit key wins; otherwise one random key kept in the data dir (never in git).

    In production mode a missing, placeholder or short key refuses to start."""
    key = env.str("DJANGO_SECRET_KEY", default="")
    if SECURE:
        problem = secret_key_problem(key)
        if problem:
            raise ImproperlyConfigured(
                f"DJANGO_SECRET_KEY {problem}; production mode (DJANGO_SECURE=1) needs a real one: {HOW_TO_MAKE_ONE}")
        return key
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("EVALSITE_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "evalsite",
    "template_partials",
    "prompts",
    "generation",
    "ratings",
    "ratings.results",
]

MIDDLEWARE = [
    "evalsite.health.HealthzMiddleware",  # first: probes skip host validation and the HTTPS redirect
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: staff login lockout (django-axes)
]

ROOT_URLCONF = "evalsite.urls"
WSGI_APPLICATION = "evalsite.wsgi.application"
ASGI_APPLICATION = "evalsite.asgi.application"

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
            # results is a package inside the ratings app, not an app: its tags are named here
            "libraries": {"results_format": "ratings.results.format_tags"},
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process and the worker process share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# Per-process memory by default; with several web processes set CACHE_URL=redis://host:6379/1 so a
# leaderboard is computed once for all of them (docker-compose does).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# Abuse counters (rate limits, login lockout) must be seen by every web process: the shared cache when
# there is one, else files in the data dir (a per-process memory cache would multiply every limit).
CACHES["limits"] = (
    env.cache_url("CACHE_URL") if "CACHE_URL" in os.environ
    else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(DATA_DIR / "limits")}
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- abuse limits (issue 12) ---------------------------------------------------------------------
# Staff login lockout (django-axes, counted in the cache: CACHE_URL must be shared across web
# processes in production, as docker-compose's Redis is): AXES_FAILURE_LIMIT failures from one
# address lock it out for AXES_COOLOFF_MINUTES (HTTP 429).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# On the shared cache (Redis) when there is one; the embedded mode has none that all processes
# share atomically, so it counts in the database there.
AXES_HANDLER = ("axes.handlers.cache.AxesCacheHandler" if "CACHE_URL" in os.environ
                else "axes.handlers.database.AxesDatabaseHandler")
AXES_CACHE = "limits"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# Panelist endpoints (django-ratelimit, same cache): "count/period" per key.
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "limits"
EVALSITE_RATES = {
    "share_client": env.str("EVALSITE_RATE_SHARE_CLIENT", default="5/h"),    # panelists one address mints
    "share_study": env.str("EVALSITE_RATE_SHARE_STUDY", default="120/h"),    # panelists one study's link mints
    "token_miss": env.str("EVALSITE_RATE_TOKEN_MISS", default="20/h"),       # wrong tokens from one address
    "answer": env.str("EVALSITE_RATE_ANSWER", default="30/m"),               # answers/skips/changes per panelist
    "image": env.str("EVALSITE_RATE_IMAGE", default="120/m"),                # image fetches per panelist
    "invite": env.str("EVALSITE_RATE_INVITE", default="300/h"),              # invite links per staff user
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"  # never linked to panelists: images go through the blind image view
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))

_s3_bucket = env.str("MEDIA_S3_BUCKET", default="")
STORAGES = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": _s3_bucket,
                "endpoint_url": env.str("MEDIA_S3_ENDPOINT_URL", default=None),
                "default_acl": "private",
                "querystring_auth": True,
                "file_overwrite": False,
            },
        }
        if _s3_bucket
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("EVALSITE_MANIFEST_STATIC", default=False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        ),
        # Static files are public and read by the image's runtime user: not the private upload modes below.
        "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755},
    },
}
WHITENOISE_USE_FINDERS = True
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
DATA_UPLOAD_MAX_MEMORY_SIZE = 25 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 25 * 1024 * 1024
# A folder of a model's images is uploaded as one file each (/sweeps/<id>/import/): DrawBench has 200 prompts.
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("EVALSITE_UPLOAD_MAX_FILES", default=2000)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Invite tokens must not leak through Referer to other sites; "no-referrer" would also make
# browsers send "Origin: null" on form POSTs, which Django's CSRF check rejects.
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (README "Deploy"); "" turns it off.
_proxy_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto" if SECURE else "")
SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=SECURE)
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]  # Prometheus scrapes the container over plain http
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE)
# The header alone enrols nothing: a domain joins browsers' preload lists only when submitted to them.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=SECURE)

# --- Celery -------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # exchange → queue bindings; kombu's default is "control" in the working directory
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Above the longest render chunk: a chunk not acked within this is redelivered.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
RENDER_CHUNK_SIZE = env.int("EVALSITE_RENDER_CHUNK_SIZE", default=16)
RENDER_MAX_ATTEMPTS = env.int("EVALSITE_RENDER_MAX_ATTEMPTS", default=3)
# A worker refreshes the heartbeat of the images it holds; images whose heartbeat is older
# than RENDER_STALE_SECONDS belong to a lost worker and are re-enqueued (generation.services).
RENDER_HEARTBEAT_SECONDS = env.float("EVALSITE_RENDER_HEARTBEAT_SECONDS", default=10.0)
RENDER_STALE_SECONDS = env.float("EVALSITE_RENDER_STALE_SECONDS", default=120.0)
# Heartbeats follow progress (an image started, a denoising step, an image finished; a model load counts
# until RENDER_LOAD_WATCHDOG_SECONDS). The per-image watchdog fails an image whose pipeline call runs past
# its limit and restarts the worker process (generation.services.liveness). The limit is
# RENDER_WATCHDOG_SECONDS when set (> 0), else RENDER_WATCHDOG_FACTOR × the model's median measured
# seconds per image, never below RENDER_WATCHDOG_FLOOR_SECONDS (FACTOR × FLOOR before a first measurement).
RENDER_WATCHDOG_SECONDS = env.float("EVALSITE_RENDER_WATCHDOG_SECONDS", default=0.0)
RENDER_WATCHDOG_FACTOR = env.float("EVALSITE_RENDER_WATCHDOG_FACTOR", default=10.0)
RENDER_WATCHDOG_FLOOR_SECONDS = env.float("EVALSITE_RENDER_WATCHDOG_FLOOR_SECONDS", default=120.0)
RENDER_LOAD_WATCHDOG_SECONDS = env.float("EVALSITE_RENDER_LOAD_WATCHDOG_SECONDS", default=3600.0)
# A chunk sent to the queue but not claimed within this many seconds, while the queue moved past it (a
# later chunk was claimed) or a worker sat idle, was lost by a worker that died before claiming it:
# reconcile sends it again (claims are idempotent, so a late original claims nothing).
RENDER_CLAIM_TIMEOUT_SECONDS = env.float("EVALSITE_RENDER_CLAIM_TIMEOUT_SECONDS", default=120.0)
# Test hook only: the worker exits right after it received a chunk, before claiming its images.
RENDER_TEST_EXIT_BEFORE_CLAIM = env.bool("EVALSITE_TEST_EXIT_BEFORE_CLAIM", default=False)

# --- evalsite -----------------------------------------------------------------
MODEL_DIR = Path(env.str("EVALSITE_MODEL_DIR", default=str(DATA_DIR / "models")))
# More folders local model directories may live in (a source outside MODEL_DIR and these is refused).
MODEL_ROOTS = env.list("EVALSITE_MODEL_ROOTS", default=["/models", "/srv/models"])
PROMPT_FILE_MAX_BYTES = env.int("EVALSITE_PROMPT_FILE_MAX_BYTES", default=20 * 1024 * 1024)
PROMPT_FILE_MAX_ROWS = env.int("EVALSITE_PROMPT_FILE_MAX_ROWS", default=100_000)
PROMPT_MAX_CHARS = env.int("EVALSITE_PROMPT_MAX_CHARS", default=4000)
RATINGS_FILE_MAX_BYTES = env.int("EVALSITE_RATINGS_FILE_MAX_BYTES", default=200 * 1024 * 1024)  # import_ratings
RATINGS_FILE_MAX_ROWS = env.int("EVALSITE_RATINGS_FILE_MAX_ROWS", default=2_000_000)
GPU_VRAM_BUDGET_GB = env.float("EVALSITE_VRAM_BUDGET_GB", default=0.0)  # 0 = whole card
# What PyTorch may allocate on this worker's GPU, in GiB (0 = the whole card): a smaller card emulated on a
# big one, or room left for other work (README "Will it fit my card?"). The CUDA context (~0.7 GiB) sits
# outside it: a 24 GB card leaves about 23.3. Nothing in the worker goes above it, profile_vram included.
GPU_MEMORY_GIB = env.float("EVALSITE_GPU_MEMORY_GIB", default=0.0)
if GPU_MEMORY_GIB < 0:
    raise ImproperlyConfigured(f"EVALSITE_GPU_MEMORY_GIB must be 0 (the whole card) or a positive GiB, not {GPU_MEMORY_GIB}")
# Image import (import_images, /sweeps/<id>/import/): a zip/upload over this many bytes is refused, and so is
# an image over this many pixels (a decompression bomb) or a zip that would unpack to more than the total.
IMAGE_IMPORT_MAX_BYTES = env.int("EVALSITE_IMAGE_IMPORT_MAX_BYTES", default=1024 * 1024 * 1024)
IMAGE_IMPORT_MAX_UNPACKED_BYTES = env.int("EVALSITE_IMAGE_IMPORT_MAX_UNPACKED_BYTES", default=4 * 1024**3)
IMAGE_IMPORT_MAX_PIXELS = env.int("EVALSITE_IMAGE_IMPORT_MAX_PIXELS", default=64_000_000)
# Leaderboard snapshots (ratings/results/snapshots.py): a task recomputes the board this many seconds
# after the first new rating, or at once after this many new ratings; pages serve the latest snapshot.
RESULTS_SNAPSHOT_DEBOUNCE_SECONDS = env.int("EVALSITE_RESULTS_DEBOUNCE_SECONDS", default=10)
RESULTS_SNAPSHOT_EVERY_RATINGS = env.int("EVALSITE_RESULTS_EVERY_RATINGS", default=500)
# Snapshots made after new ratings (one every debounce while ratings arrive: ~8,600 a day of a busy study) are
# thinned beyond the newest this many per study to the last one of each hour; kept tables, and snapshots of any
# other reason (first, exclusion, criteria, recompute, import, facts), always stay. 0 keeps every snapshot.
RESULTS_SNAPSHOT_KEEP_RECENT = env.int("EVALSITE_RESULTS_SNAPSHOT_KEEP_RECENT", default=100)
if RESULTS_SNAPSHOT_KEEP_RECENT < 0:
    raise ImproperlyConfigured(f"EVALSITE_RESULTS_SNAPSHOT_KEEP_RECENT must be 0 or more, not {RESULTS_SNAPSHOT_KEEP_RECENT}")
# Pages recompute a stale board themselves instead of asking a worker (tests; a site run without any worker).
RESULTS_COMPUTE_ON_READ = env.bool("EVALSITE_RESULTS_COMPUTE_ON_READ", default=False)
# The raw ratings export of a study with more ratings than this is written by a task on the default queue into
# the media storage (exports/), and offered for download when ready; up to it, ratings.csv streams at once.
RESULTS_EXPORT_BACKGROUND_ROWS = env.int("EVALSITE_RESULTS_EXPORT_BACKGROUND_ROWS", default=200_000)
# Finished export files kept per study and kind (the newest); an older one's file is deleted from the storage
# when a newer one is written (its row stays in the history, marked removed). 0 keeps every file.
RESULTS_EXPORT_KEEP = env.int("EVALSITE_RESULTS_EXPORT_KEEP", default=3)
if RESULTS_EXPORT_KEEP < 0:
    raise ImproperlyConfigured(f"EVALSITE_RESULTS_EXPORT_KEEP must be 0 or more, not {RESULTS_EXPORT_KEEP}")
# Threads one board computation spreads its numpy work over (the score table, the per-category tables and
# the pairs side by side; numpy releases the GIL in its loops); 1 computes everything on the calling thread.
RESULTS_COMPUTE_THREADS = env.int("EVALSITE_RESULTS_COMPUTE_THREADS", default=min(3, os.cpu_count() or 1))
if RESULTS_COMPUTE_THREADS < 1:
    raise ImproperlyConfigured(f"EVALSITE_RESULTS_COMPUTE_THREADS must be 1 or more, not {RESULTS_COMPUTE_THREADS}")

# --- Observability (README "Observability"): each off unless its variable is set -----------------
# Structured logs: EVALSITE_LOG_FORMAT=json writes one JSON object per line (docker-compose sets it).
LOG_FORMAT = env.str("EVALSITE_LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
                 "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
    },
    "filters": {"mask_tokens": {"()": "evalsite.logmask.TokenMaskFilter"}},  # panelist tokens never logged
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain",
                             "filters": ["mask_tokens"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # axes announces itself at INFO in every process (commands, workers): its warnings are enough
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Errors to Sentry (web and workers): SENTRY_DSN.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from evalsite.observability import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=env.str("SENTRY_ENVIRONMENT", default="production"),
                traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0))

# Prometheus at /metrics (django-prometheus request/DB metrics plus images/s, queue depth, ratings/s):
# EVALSITE_METRICS=1; EVALSITE_METRICS_TOKEN, when set, is required as "Authorization: Bearer <token>".
METRICS_ENABLED = env.bool("EVALSITE_METRICS", default=False)
METRICS_TOKEN = env.str("EVALSITE_METRICS_TOKEN", default="")
if METRICS_ENABLED:
    INSTALLED_APPS.append("django_prometheus")
    MIDDLEWARE = ["django_prometheus.middleware.PrometheusBeforeMiddleware", *MIDDLEWARE,
                  "django_prometheus.middleware.PrometheusAfterMiddleware"]
