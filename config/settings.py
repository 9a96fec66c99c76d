"""Wavegate's settings, all read from the environment (django-environ).

Every setting has a default that is safe for the local demo (`make run`); production sets the
documented environment variables instead (see README.md and docker-compose.yml).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file next to manage.py is read when present; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Where the demo keeps its SQLite database and generated secret key.
VAR_DIR = Path(env.str("WAVEGATE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _secret_key() -> str:
    """The key from DJANGO_SECRET_KEY, else one generated once and kept in VAR_DIR.

    The demo needs no setup and still never runs on a key that is written in the source.
    """
    configured: str = env.str("DJANGO_SECRET_KEY", default="")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First: its createsuperuser and changepassword (one transaction with their audit event)
    # stand in for django.contrib.auth's.
    "accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "audit",
    "health",
    "fleet",
    "preflight",
    "rollout",
    # The REST API (/api/v1/), its tokens and its OpenAPI schema: the same actions as the pages.
    "api",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # After audit: a failed sign-in is recorded before the lock-out it causes.
    "axes",
]

MIDDLEWARE = [
    # First: what a client says about its address or its scheme counts only through a proxy.
    "audit.middleware.TrustedProxyMiddleware",
    # Counts and times every request for /metrics (config/metrics.py).
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Refuses control characters in any parameter before a view runs (config/input_guard.py).
    "config.input_guard.InputGuardMiddleware",
    # Says on the page when work queued after a commit could not reach the broker yet.
    "config.outbox_notice.OutboxNoticeMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Answers a sign-in refused by the lock-out with accounts/locked_out.html.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # `count`, for "1 cluster" / "2 clusters" on every page (accounts/wording.py), and the
            # live regions' `live_poll` / `live_updated` (accounts/templatetags/live.py).
            "builtins": ["accounts.templatetags.wording", "accounts.templatetags.live"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
                "rollout.context_processors.banner",
                "audit.context_processors.chain_banner",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the demo's embedded default; production and the test suite use PostgreSQL.
# DATABASE_URL is whom this process connects as. On PostgreSQL that is two roles (README:
# Database roles): `manage.py migrate` alone is given the owner's URL, which creates and alters
# the tables; web, workers and beat are given the application role's, which may change rows
# but only add and read audit events and checkpoints. The owner's password is never in the
# application's environment, so a compromised web process cannot borrow the owner's rights.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'wavegate.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat are separate processes writing to one file: WAL lets readers go
    # on while one writes, the busy timeout makes a writer wait instead of failing, and
    # IMMEDIATE transactions take the write lock up front so two writers never deadlock.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env.int("WAVEGATE_SQLITE_BUSY_TIMEOUT", default=30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The application's PostgreSQL role: migrating (as the owner) grants it INSERT and SELECT on the
# audit tables, when it exists, and revokes UPDATE, DELETE and TRUNCATE from every role but the
# owner (audit/migrations/0006). `manage.py db_roles` creates the two roles. Empty: no grant.
WAVEGATE_DB_APP_ROLE = env.str("WAVEGATE_DB_APP_ROLE", default="")

# --- Sign-in --------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "fleet:overview"
LOGOUT_REDIRECT_URL = "accounts:login"
SESSION_COOKIE_AGE = env.int("WAVEGATE_SESSION_SECONDS", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Guessing is throttled (django-axes): after this many failed sign-ins for one user name, or
# from one address, further tries are refused unchecked until the lock-out ends or an admin
# lifts it (Accounts > Lock-outs, or `manage.py lift_lockout`).
AUTHENTICATION_BACKENDS = [
    "accounts.backends.SignInThrottle",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("WAVEGATE_SIGN_IN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("WAVEGATE_SIGN_IN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A successful sign-in does not wipe the failures: else signing in to one's own account would
# reset the count of the address's guesses at someone else's.
AXES_RESET_ON_SUCCESS = False
# A try during a lock-out is refused unchecked: it neither extends the lock-out nor writes an
# audit event (the lock-out itself is one event), so guessing cannot flood the audit log.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "audit.middleware.client_ip"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# The audit log records failed sign-ins one by one up to this many a minute (for the whole
# site), and refused requests up to this many a minute per person (or address); the rest are
# counted, and one event a minute says how many, by whom and from where (audit/attempts.py).
WAVEGATE_SIGN_IN_FAILURES_RECORDED_PER_MINUTE = env.int(
    "WAVEGATE_SIGN_IN_FAILURES_RECORDED_PER_MINUTE", default=10
)
WAVEGATE_REFUSALS_RECORDED_PER_MINUTE = env.int("WAVEGATE_REFUSALS_RECORDED_PER_MINUTE", default=10)
AXES_HTTP_RESPONSE_CODE = 429
# Sign-ins are in the audit log already; axes keeps only the failure counts it needs.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- HTTPS, cookies and proxies ---------------------------------------------------------------
# With DEBUG off Wavegate expects to be reached over HTTPS: cookies are Secure, answers carry
# HSTS. The demo serves plain HTTP on localhost and says DJANGO_SECURE_COOKIES=false.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# Pages send the CSRF token in a header from the page itself (base.html), never from the cookie.
CSRF_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading commits the whole domain to HTTPS in browsers for good: the domain's owner opts in.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# The addresses (or networks) of the reverse proxies in front of Wavegate. Only a request that
# comes from one of them may say, in X-Forwarded-For and X-Forwarded-Proto, who the client is
# and whether it used HTTPS (audit/middleware.py drops those headers from anyone else).
WAVEGATE_TRUSTED_PROXIES = env.list("WAVEGATE_TRUSTED_PROXIES", default=[])
# How many of those proxies append to X-Forwarded-For, one behind the other.
WAVEGATE_TRUSTED_PROXY_COUNT = env.int(
    "WAVEGATE_TRUSTED_PROXY_COUNT", default=1 if WAVEGATE_TRUSTED_PROXIES else 0
)
if WAVEGATE_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Behind a TLS proxy, a plain-HTTP request is sent to HTTPS (the container's healthcheck asks
# /healthz directly, over HTTP).
SECURE_SSL_REDIRECT = env.bool(
    "DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG and bool(WAVEGATE_TRUSTED_PROXIES)
)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files (served by WhiteNoise; nothing comes from a CDN) --------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Only images built with collectstatic set it (see Dockerfile); the demo serves from the finders.
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default=None)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("DJANGO_STATIC_MANIFEST", default=False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        ),
    },
}
# Without collectstatic (the demo), WhiteNoise serves straight from the finders.
WHITENOISE_USE_FINDERS = True

# --- Redis and Celery -----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacknowledged task goes back to the queue after this long; it must exceed the
    # longest task (acks_late), see CELERY_TASK_TIME_LIMIT.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # A Redis that does not answer at all fails a publish (an action's follow-up tick, a
    # webhook) after this long instead of holding a web request until gunicorn's timeout.
    "socket_connect_timeout": env.float("CELERY_BROKER_CONNECT_TIMEOUT", default=5.0),
}
# Every worker must consume this queue (and WAVEGATE_SCAN_QUEUE's, when set). `make run` uses
# `wavegate-demo` and a Redis database of its own, so that it shares no work with another app.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="wavegate")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The database is the source of truth for every piece of work: no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep each worker process's database connection across tasks (closed every 2 x this many
# tasks, and whenever CONN_MAX_AGE or a failure says so: config/celery_app.py).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TIMEZONE = TIME_ZONE
# Work sent after a commit goes through the outbox (fleet/outbox.py). Publishing to a broker that
# is down is tried briefly, then left to beat, so that the page answers at once.
WAVEGATE_OUTBOX_PUBLISH_RETRY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# Work the broker never took for this long is given up (audited); a scan it was for fails.
WAVEGATE_OUTBOX_GIVE_UP_MINUTES = env.float("WAVEGATE_OUTBOX_GIVE_UP_MINUTES", default=60.0)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# A worker counts as alive while its last heartbeat is younger than the stale limit.
WAVEGATE_HEARTBEAT_SECONDS = env.int("WAVEGATE_HEARTBEAT_SECONDS", default=30)
WAVEGATE_HEARTBEAT_STALE_SECONDS = env.int("WAVEGATE_HEARTBEAT_STALE_SECONDS", default=120)
# /metrics (Prometheus) asks for `Authorization: Bearer <this>` when set; empty: open to anyone.
WAVEGATE_METRICS_TOKEN = env.str("WAVEGATE_METRICS_TOKEN", default="")


def _every(seconds: float) -> dict[str, Any]:
    """A beat entry's schedule, and its expiry: a run still queued when the next is due is
    dropped (django-celery-beat reads `expire_seconds`, whole seconds), so runs do not pile up
    while no worker is there to take them."""
    return {"schedule": seconds, "options": {"expire_seconds": max(1, math.ceil(seconds))}}


# The reconciler's period. Between ticks each cluster's steps schedule their own next one
# (an operation's next read when Azure's Retry-After says), so a tick only starts waves and
# clusters and sends what nobody has queued.
WAVEGATE_ENGINE_TICK_SECONDS = env.float("WAVEGATE_ENGINE_TICK_SECONDS", default=5.0)
# Each cluster's Kubernetes events (its warnings, AKS's iptables monitor) are pulled for its
# page's timeline every WAVEGATE_CLUSTER_EVENTS_MINUTES, and those of the clusters a rollout is
# changing (or watching while their wave soaks) every WAVEGATE_CLUSTER_EVENTS_IN_FLIGHT_SECONDS;
# a pull reads at most WAVEGATE_CLUSTER_EVENTS_PER_PULL events (fleet/events.py).
WAVEGATE_CLUSTER_EVENTS_MINUTES = env.float("WAVEGATE_CLUSTER_EVENTS_MINUTES", default=10.0)
WAVEGATE_CLUSTER_EVENTS_IN_FLIGHT_SECONDS = env.float(
    "WAVEGATE_CLUSTER_EVENTS_IN_FLIGHT_SECONDS", default=60.0
)
WAVEGATE_CLUSTER_EVENTS_PER_PULL = env.int("WAVEGATE_CLUSTER_EVENTS_PER_PULL", default=500)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "inventory-sync": {
        "task": "fleet.sync_inventory",
        **_every(60.0 * env.int("WAVEGATE_SYNC_MINUTES", default=15)),
    },
    "worker-heartbeat": {
        "task": "health.record_heartbeat",
        **_every(float(WAVEGATE_HEARTBEAT_SECONDS)),
    },
    # The rollout engine's reconciler: gates, waves, budgets, and a step for each target in
    # flight. The database is the truth; a tick lost (worker or Redis down) is made up next.
    "rollout-tick": {
        "task": "rollout.tick",
        **_every(WAVEGATE_ENGINE_TICK_SECONDS),
    },
    # Work the broker refused after a commit is sent again (fleet/outbox.py).
    "resend-outbox": {
        "task": "fleet.resend_outbox",
        **_every(env.float("WAVEGATE_OUTBOX_RESEND_SECONDS", default=60.0)),
    },
    # Scans whose worker died end as error, so their clusters can be scanned again.
    "expire-abandoned-scans": {
        "task": "fleet.expire_abandoned_scans",
        **_every(env.float("WAVEGATE_SCAN_EXPIRY_CHECK_SECONDS", default=300.0)),
    },
    # The audit chain's head is signed and anchored outside the database every minute in
    # which events were added (audit/anchor.py), and what was added is checked (banner and
    # audit.chain_broken when something is wrong).
    "audit-checkpoint": {
        "task": "audit.checkpoint",
        **_every(env.float("WAVEGATE_AUDIT_CHECKPOINT_SECONDS", default=60.0)),
    },
    "audit-verify": {
        "task": "audit.verify_increment",
        **_every(env.float("WAVEGATE_AUDIT_VERIFY_SECONDS", default=60.0)),
    },
    # Failed sign-ins and refusals beyond those recorded one by one: one summary for each
    # minute that has passed (audit/attempts.py).
    "audit-attempt-summaries": {
        "task": "audit.summarise_attempts",
        **_every(60.0),
    },
    # Clusters' Kubernetes events, for their pages' timelines (settings above).
    "cluster-events": {
        "task": "fleet.pull_events",
        **_every(60.0 * WAVEGATE_CLUSTER_EVENTS_MINUTES),
    },
    "cluster-events-in-flight": {
        "task": "rollout.pull_events_in_flight",
        **_every(WAVEGATE_CLUSTER_EVENTS_IN_FLIGHT_SECONDS),
    },
    # Scan namespaces a dead worker left on recently scanned clusters are deleted, and audited.
    "reap-scan-leftovers": {
        "task": "preflight.reap_leftovers",
        **_every(env.float("WAVEGATE_SCAN_REAP_SECONDS", default=300.0)),
    },
}

# --- Audit anchors -----------------------------------------------------------------------------
# The key that signs checkpoints of the audit chain (HMAC-SHA256): a file only Wavegate's
# processes can read, never the database. Empty: no checkpoints (audit_verify says so).
WAVEGATE_AUDIT_HMAC_KEY_FILE = env.str("WAVEGATE_AUDIT_HMAC_KEY_FILE", default="")
# Every checkpoint is appended here (JSON lines) before the database stores it: keep the file
# where the database's administrators cannot rewrite it (another volume, append-only storage).
WAVEGATE_AUDIT_CHECKPOINT_FILE = env.str("WAVEGATE_AUDIT_CHECKPOINT_FILE", default="")
# Optionally also POSTed (JSON) to this address, e.g. a log collector's.
WAVEGATE_AUDIT_CHECKPOINT_WEBHOOK = env.str("WAVEGATE_AUDIT_CHECKPOINT_WEBHOOK", default="")

# --- Azure -----------------------------------------------------------------------------------
# Production talks to ARM with DefaultAzureCredential; the demo and tests point the same SDK
# calls at aksim (its endpoint, its CA, a static token). Only fleet/azure.py reads these.
AZURE_ARM_ENDPOINT = env.str("AZURE_ARM_ENDPOINT", default="https://management.azure.com")
AZURE_CA_BUNDLE = env.str("AZURE_CA_BUNDLE", default="") or None
AZURE_CREDENTIAL = env.str("AZURE_CREDENTIAL", default="default")  # default | static
AZURE_STATIC_TOKEN = env.str("AZURE_STATIC_TOKEN", default="")

# --- Inventory -------------------------------------------------------------------------------
# The tag whose value is a cluster's rollout ring (canary, early, broad, ...).
WAVEGATE_RING_TAG = env.str("WAVEGATE_RING_TAG", default="ring")
WAVEGATE_SYNC_MINUTES = env.int("WAVEGATE_SYNC_MINUTES", default=15)
# Rings in rollout order (a plan's waves go ring by ring); others follow by name, then no ring.
WAVEGATE_RING_ORDER = env.list("WAVEGATE_RING_ORDER", default=["canary", "early", "broad"])
# Minutes one cluster's change is assumed to take, for the new-plan page's duration estimate.
WAVEGATE_ESTIMATED_OPERATION_MINUTES = env.int("WAVEGATE_ESTIMATED_OPERATION_MINUTES", default=30)
# Parallel Azure reads during a sync (maintenance configurations).
WAVEGATE_SYNC_CONCURRENCY = env.int("WAVEGATE_SYNC_CONCURRENCY", default=32)
# A sync still marked running after this long was abandoned (its worker died).
WAVEGATE_SYNC_TIMEOUT_SECONDS = env.int("WAVEGATE_SYNC_TIMEOUT_SECONDS", default=3600)
# Maintenance configurations are re-read this often (Resource Graph does not carry them).
WAVEGATE_MAINTENANCE_REFRESH_HOURS = env.int("WAVEGATE_MAINTENANCE_REFRESH_HOURS", default=24)

# --- API -------------------------------------------------------------------------------------
# Personal API tokens last this many days unless their creator says otherwise, and never more
# than the maximum.
WAVEGATE_API_TOKEN_DEFAULT_DAYS = env.int("WAVEGATE_API_TOKEN_DEFAULT_DAYS", default=90)
WAVEGATE_API_TOKEN_MAX_DAYS = env.int("WAVEGATE_API_TOKEN_MAX_DAYS", default=365)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.BearerTokenAuthentication",
        # The schema's documentation page, read in a signed-in browser (CSRF enforced).
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.SignedIn", "api.auth.ReadOnlyToken"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Cursor",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "api.errors.handle",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Wavegate API",
    "DESCRIPTION": (
        "Everything the pages do, for scripts: the same actions and the same permission checks. "
        "Send a personal API token as `Authorization: Bearer <token>`. Every error is JSON with "
        "a stable `code`, a `message` for a person and the `field` at fault."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["api.auth.SignedIn"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The documentation page's scripts come from this server (the sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PlanStatusEnum": "rollout.choices.PlanStatus",
        "WaveStatusEnum": "rollout.choices.WaveStatus",
        "TargetStatusEnum": "rollout.choices.TargetStatus",
        "ScanStatusEnum": "fleet.choices.ScanStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.document_errors",
    ],
}

# --- Notifications ---------------------------------------------------------------------------
# Where a webhook (a chat channel, an incident tool) is told when a wave awaits approval or a
# plan pauses; empty: no webhook. With a secret, each POST carries an HMAC-SHA256 of its body.
WAVEGATE_WEBHOOK_URL = env.str("WAVEGATE_WEBHOOK_URL", default="")
WAVEGATE_WEBHOOK_SECRET = env.str("WAVEGATE_WEBHOOK_SECRET", default="")
WAVEGATE_WEBHOOK_TIMEOUT_SECONDS = env.float("WAVEGATE_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Tries after the first on a network error or a 5xx, waiting 1, 2, 4 … times this (capped).
WAVEGATE_WEBHOOK_RETRIES = env.int("WAVEGATE_WEBHOOK_RETRIES", default=6)
WAVEGATE_WEBHOOK_BACKOFF_SECONDS = env.int("WAVEGATE_WEBHOOK_BACKOFF_SECONDS", default=30)
# More destinations, each with its format and the events it wants: a JSON list of
# {"name", "url", "format": "wavegate"|"slack"|"teams", "events": [...], "secret"}, read and
# checked at start-up by rollout/checks.py (README: Environment variables). Empty: none.
WAVEGATE_NOTIFY_DESTINATIONS = env.str("WAVEGATE_NOTIFY_DESTINATIONS", default="")
# Wavegate's own address as people reach it, for links in notifications.
WAVEGATE_PUBLIC_URL = env.str("WAVEGATE_PUBLIC_URL", default="http://localhost:8000")

# --- Preflight scans -----------------------------------------------------------------------
# The scan pods' image: it needs only a shell and nsenter (the host's own iptables-save runs
# through nsenter). Pin it by digest in production: the pods are privileged on every node.
WAVEGATE_SCAN_IMAGE = env.str(
    "WAVEGATE_SCAN_IMAGE", default="mcr.microsoft.com/azurelinux/busybox:1.36"
)
WAVEGATE_SCAN_IMAGE_DIGEST = env.str("WAVEGATE_SCAN_IMAGE_DIGEST", default="")
# How long a scan waits for every node's pod to print its dumps before it calls them unread.
WAVEGATE_SCAN_DEADLINE_SECONDS = env.float("WAVEGATE_SCAN_DEADLINE_SECONDS", default=300.0)
WAVEGATE_SCAN_POLL_SECONDS = env.float("WAVEGATE_SCAN_POLL_SECONDS", default=2.0)
# One Kubernetes API call's time limit (a cluster whose API hangs fails the scan after this).
WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS = env.float(
    "WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS", default=20.0
)
# The most of one node's scan log (both families' dumps) a scan reads, passed to the pod-log
# read as limitBytes, and the most of a file `manage.py iptables_check` reads: a dump over it is
# unreadable (never clean), with a message naming this limit. Default 64 MiB.
WAVEGATE_SCAN_MAX_DUMP_BYTES = env.int("WAVEGATE_SCAN_MAX_DUMP_BYTES", default=64 * 1024 * 1024)
# One scan's time limit: its deadline for the pods, plus the Kubernetes API calls around it
# (nodes, namespace, DaemonSet, pods, logs, clean-up), each up to its own time limit. A task
# that runs a scan (a scan task, a rollout step) is warned after this long and killed a minute
# later; a scan still running then was left by a worker that died, and beat ends it as an error.
WAVEGATE_SCAN_TIME_LIMIT_SECONDS = env.int(
    "WAVEGATE_SCAN_TIME_LIMIT_SECONDS",
    default=int(WAVEGATE_SCAN_DEADLINE_SECONDS + 6 * WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS),
)
# A scan pod sleeps at most this long once it has printed (the scan reads it meanwhile), then
# ends: a scan left behind by a worker that died does not keep a privileged pod busy for ever.
WAVEGATE_SCAN_POD_SLEEP_SECONDS = WAVEGATE_SCAN_TIME_LIMIT_SECONDS + 120
# This installation's name on every scan namespace it creates (label wavegate.io/installation):
# beat's reaper deletes only its own leftovers, never another Wavegate's scan in progress on a
# shared cluster. Default: derived from the database's host, port and name (not the password),
# so web, workers and beat agree and it stays put for a deployment; set it if the database moves.
_database = DATABASES["default"]
_database_identity = f"{_database.get('HOST') or ''}:{_database.get('PORT') or ''}"
_database_identity += f"/{_database.get('NAME')}"
WAVEGATE_INSTALLATION_ID = env.str(
    "WAVEGATE_INSTALLATION_ID",
    default="wg-" + hashlib.sha256(_database_identity.encode()).hexdigest()[:16],
)
if not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", WAVEGATE_INSTALLATION_ID):
    raise ValueError(
        "WAVEGATE_INSTALLATION_ID must be a Kubernetes label value: up to 63 letters, digits, "
        "'-', '_' or '.', starting and ending with a letter or digit"
    )
# Beat deletes this installation's scan namespaces older than a scan's time limit plus this
# grace, on the clusters scanned within the look-back (a worker killed mid-scan left them).
WAVEGATE_SCAN_LEFTOVER_GRACE_SECONDS = env.int("WAVEGATE_SCAN_LEFTOVER_GRACE_SECONDS", default=300)
WAVEGATE_SCAN_LEFTOVER_LOOKBACK_HOURS = env.int("WAVEGATE_SCAN_LEFTOVER_LOOKBACK_HOURS", default=48)
# One reaper run stops starting clusters after this long; the rest wait for the next run.
WAVEGATE_SCAN_REAP_BUDGET_SECONDS = env.float("WAVEGATE_SCAN_REAP_BUDGET_SECONDS", default=240.0)
# The most name lines (exact names and patterns) a plan's selection takes, and the longest one
# (the preview cuts the plan on every keystroke: bench/preview_caps.py times it at these caps
# over 10,000 clusters).
WAVEGATE_PLAN_MAX_PATTERNS = env.int("WAVEGATE_PLAN_MAX_PATTERNS", default=1000)
WAVEGATE_PLAN_MAX_PATTERN_LENGTH = env.int("WAVEGATE_PLAN_MAX_PATTERN_LENGTH", default=200)
# Of those, the most that hold a wildcard: each glob is tried on every cluster, an exact name is
# one look-up.
WAVEGATE_PLAN_MAX_GLOBS = env.int("WAVEGATE_PLAN_MAX_GLOBS", default=50)
# What the new-plan form suggests: a soak long enough to notice trouble, changes inside each
# cluster's maintenance window. `make run` suggests a minute and no windows, so that a first
# plan on the simulated fleet ends in minutes.
WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES = env.int("WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES", default=30)
WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS = env.bool(
    "WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS", default=True
)
# A rollout reuses a cluster's preflight scan younger than this, else scans it again first.
WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES = env.int("WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES", default=60)
# Clusters scanned at once by "Scan all eligible clusters".
WAVEGATE_SCAN_CONCURRENCY = env.int("WAVEGATE_SCAN_CONCURRENCY", default=8)
# Scans mostly wait on clusters: production runs them on a queue of their own, served by a
# worker with a thread pool (docker-compose.yml's `scanner`). Unset: the default queue.
WAVEGATE_SCAN_QUEUE = env.str("WAVEGATE_SCAN_QUEUE", default="")
CELERY_TASK_ROUTES = (
    {task: {"queue": WAVEGATE_SCAN_QUEUE} for task in ("fleet.scan_cluster", "fleet.scan_next")}
    if WAVEGATE_SCAN_QUEUE
    else {}
)

# --- Rollout engine ---------------------------------------------------------------------------
# After Azure says a cluster's change succeeded, its nodes must come back Ready, labelled, with
# ready Cilium agents within this long, else the cluster fails verification (named nodes).
WAVEGATE_VERIFY_NODES_MINUTES = env.float("WAVEGATE_VERIFY_NODES_MINUTES", default=20.0)
# How long a cluster may stay in each in-flight state before the engine fails it, with the last
# error Azure gave: the work's own time and a generous margin. A transient error (throttling, an
# outage, another operation running) is retried until then; one that cannot heal (the cluster
# deleted, access removed, the request invalid) fails the cluster at once with Azure's code.
# preflight: a fresh scan, twice over; ready + changing (one clock: a throttled PUT goes back to
# ready without restarting it): AKS's own update of a large cluster; verifying: the nodes' time
# to settle and a margin; rolling back: as changing.
WAVEGATE_DEADLINE_PREFLIGHT_MINUTES = env.float(
    "WAVEGATE_DEADLINE_PREFLIGHT_MINUTES", default=2 * WAVEGATE_SCAN_TIME_LIMIT_SECONDS / 60 + 30
)
WAVEGATE_DEADLINE_CHANGE_MINUTES = env.float("WAVEGATE_DEADLINE_CHANGE_MINUTES", default=240.0)
WAVEGATE_DEADLINE_VERIFY_MINUTES = env.float(
    "WAVEGATE_DEADLINE_VERIFY_MINUTES", default=WAVEGATE_VERIFY_NODES_MINUTES + 30
)
WAVEGATE_DEADLINE_ROLLBACK_MINUTES = env.float("WAVEGATE_DEADLINE_ROLLBACK_MINUTES", default=240.0)
# While AKS runs an operation of its own on a cluster (auto-upgrade, node image upgrade), it
# answers a PUT 409 OperationNotAllowed: the engine waits this long and sends it again, until
# the change deadline.
WAVEGATE_BUSY_RETRY_SECONDS = env.float("WAVEGATE_BUSY_RETRY_SECONDS", default=60.0)
# AKS's iptables monitor re-checks nodes every few minutes, so after user rules were removed
# AKS may go on refusing for a while: the engine retries such a refusal, backing off, for this
# long before it fails the cluster with Azure's message.
WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES = env.float(
    "WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES", default=15.0
)
# Resource Graph is seconds to minutes behind ARM: for this long after the engine read a
# cluster's mode from ARM itself, an inventory sync does not overwrite it with Resource Graph's.
WAVEGATE_GRAPH_LAG_MINUTES = env.float("WAVEGATE_GRAPH_LAG_MINUTES", default=10.0)
# While a wave soaks, each of its clusters' nodes and warning events are read this often.
WAVEGATE_SOAK_CHECK_SECONDS = env.float("WAVEGATE_SOAK_CHECK_SECONDS", default=60.0)
# A cluster's queued step this long overdue is taken as lost (its worker died holding it) and
# the reconciler sends another; a late one that still arrives finds nothing due and ends.
WAVEGATE_STEP_GRACE_SECONDS = env.float("WAVEGATE_STEP_GRACE_SECONDS", default=20.0)
# One engine step's time limit: it may run a fresh preflight scan inline, so it is a scan's,
# and the minute after it. Where the database has no advisory locks (the demo's SQLite), a
# running step holds its cluster by a lease this long, so that no second step is sent meanwhile.
WAVEGATE_STEP_TIME_LIMIT_SECONDS = WAVEGATE_SCAN_TIME_LIMIT_SECONDS + 60
# How long a cluster waits before its next step when nothing says otherwise (a window closed,
# nodes not settled, Azure busy), and the bounds put on Azure's Retry-After.
WAVEGATE_STEP_WAIT_SECONDS = env.float("WAVEGATE_STEP_WAIT_SECONDS", default=5.0)
WAVEGATE_POLL_MIN_SECONDS = env.float("WAVEGATE_POLL_MIN_SECONDS", default=1.0)
WAVEGATE_POLL_MAX_SECONDS = env.float("WAVEGATE_POLL_MAX_SECONDS", default=60.0)

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # The Azure SDK logs every request and response at INFO: far too much for a sync.
        "azure": {"level": env.str("AZURE_LOG_LEVEL", default="WARNING")},
        "urllib3.connectionpool": {"level": "ERROR"},
    },
}
