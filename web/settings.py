"""Django settings for offload.

Every value that changes between machines comes from the environment, read here and nowhere else.
The defaults are production's, safe when a variable is forgotten; `make run` writes `.env` with what
local work needs (DEBUG=true and one SECRET_KEY for every process), and this module reads it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dj_database_url
import limits

from web.env import (
    env_bool,
    env_int,
    env_list,
    env_optional,
    env_str,
    is_loopback,
    load_env_file,
    refuse,
)

BASE_DIR = Path(__file__).resolve().parent.parent
#: Shorter tokens could be guessed; 32 characters of token_urlsafe carry 192 bits.
METRICS_TOKEN_MIN_LENGTH = 32


def _rate_limit(name: str, default: str) -> str:
    text = env_str(name, default)
    try:
        limits.parse(text)
    except ValueError:
        refuse(f"{name} must be a rate such as '20/hour' or '5 per 15 minutes', not {text!r}.")
    return text


# Local settings for `make run` and for `manage.py` typed by hand; the real environment wins over it.
# ENV_FILE names another file, and set empty reads none (the test suite reads none).
load_env_file(env_optional("ENV_FILE", str(BASE_DIR / ".env")))

# Off unless asked for, so a deployment that forgets it shows visitors no tracebacks or settings.
DEBUG = env_bool("DEBUG", default=False)
# Signs sessions, CSRF tokens and the mailed confirmation links, so every process of a deployment
# (web, worker, scheduler) needs the same key. It is never made up here: a key per process is what
# made a link signed by the worker fail in the web process.
SECRET_KEY = env_str("SECRET_KEY", "").strip()
if not SECRET_KEY:
    refuse(
        "SECRET_KEY is not set. Give every process the same 50+ random characters, e.g. from "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'; for local work `make run` "
        "writes one to .env."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS, cookies and HSTS: on in production, each switchable ---------------------------------
# Behind a load balancer that ends TLS, every request reaches Django as plain HTTP; the balancer's
# header (X-Forwarded-Proto) tells what the visitor used. Name it only if the balancer sets it on
# every request, replacing any value a client sent: otherwise a client could claim HTTPS.
_PROXY_SSL_HEADER = env_optional("SECURE_PROXY_SSL_HEADER")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
# Plain-HTTP requests are redirected to HTTPS; turn off where the balancer already redirects.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Session and CSRF cookies travel over HTTPS only.
SECURE_COOKIES = env_bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
# Browsers remember to use HTTPS for this long (a year: what the preload list asks for). Start lower
# (e.g. 3600) the first time a domain is served over HTTPS, while it can still be rolled back.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 60 * 60)
# Subdomains too, and consent to browsers' preload lists (listing needs a submission by the owner).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=not DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dramatiq",
    "web.core",
    "web.accounts",
    "web.images",
    "web.trending",
    "web.reports",
    "web.exports",
    "web.ops",
    "tasks",
    "scheduler",
]

MIDDLEWARE = [
    # Counts and times every request for /metrics; removes itself while METRICS_TOKEN is unset.
    "web.metrics.http.RequestMetrics",
    "django.middleware.security.SecurityMiddleware",
    # Sends every message a request enqueued on commit in one SQS batch when the view is done.
    "web.core.middleware.EnqueueBatchMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if not DEBUG:
    # Production serves the collected static files itself (the release phase runs collectstatic).
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "web.urls"
WSGI_APPLICATION = "web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "web" / "templates"],
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

# SQLite locally; production (and the suite's second run) gives a postgres:// URL, served by psycopg 3.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        # A connection kept between requests (DATABASE_CONN_MAX_AGE) may have died with a restart
        # or failover of the server: Django checks it before reuse instead of failing one request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker threads write at once: WAL lets readers run beside a writer, IMMEDIATE
    # transactions take the write lock up front, and the timeout waits for it instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2id first: new passwords and every log-in with an older hash get it (README, "Passwords").
# PBKDF2 stays so that hashes stored before still verify; Django rehashes them at the next log-in.
PASSWORD_HASHERS = [
    "web.accounts.hashers.Argon2idPasswordHasher",
    "web.accounts.hashers.BoundedPBKDF2PasswordHasher",
]

# Password hashes one web process runs at once (0: no limit). Each takes 24 MiB and a core; more at
# once than cores only thrash the cache, and a burst of log-ins then holds every core (README, "Passwords").
PASSWORD_HASHES_AT_ONCE = env_int("PASSWORD_HASHES_AT_ONCE", 1)
if PASSWORD_HASHES_AT_ONCE < 0:
    refuse(f"PASSWORD_HASHES_AT_ONCE must be 0 (no limit) or more, not {PASSWORD_HASHES_AT_ONCE}.")

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

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# web/static is no app's static folder, so the finders (runserver, tests, collectstatic) need telling.
STATICFILES_DIRS = [BASE_DIR / "web" / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# --- Amazon SQS and Dramatiq ---------------------------------------------------------------------
AWS_REGION = env_str("AWS_REGION", "us-east-1")
# Empty means "AWS itself"; the default is the loopback server that `make run` starts.
SQS_ENDPOINT_URL = env_optional("SQS_ENDPOINT_URL", "http://127.0.0.1:9324")
# Prefix of every queue name, so several deployments (or developers) can share one account.
SQS_NAMESPACE = env_str("SQS_NAMESPACE", "offload-dev")
SQS_VISIBILITY_TIMEOUT_MS = env_int("SQS_VISIBILITY_TIMEOUT_MS", 60_000)
SQS_CREATE_QUEUES = env_bool("SQS_CREATE_QUEUES", default=True)
# Messages larger than SQS takes are stored in this S3 bucket and sent as pointers (the SQS Extended
# Client's format). Unset, such a message is refused at enqueue (MessageTooLarge).
SQS_PAYLOAD_BUCKET = env_optional("SQS_PAYLOAD_BUCKET")
# Bytes above which a message goes through S3; 0 means each queue's MaximumMessageSize (SQS's own limit).
SQS_PAYLOAD_THRESHOLD = env_int("SQS_PAYLOAD_THRESHOLD", 0)
if SQS_PAYLOAD_THRESHOLD and not SQS_PAYLOAD_BUCKET:
    refuse("SQS_PAYLOAD_THRESHOLD needs SQS_PAYLOAD_BUCKET: the bucket the larger messages go to.")
if not 0 <= SQS_PAYLOAD_THRESHOLD <= 1_048_576:
    refuse(
        "SQS_PAYLOAD_THRESHOLD must be between 1 and 1048576 bytes (0: each queue's own limit), "
        f"not {SQS_PAYLOAD_THRESHOLD}."
    )

_SQS_OPTIONS: dict[str, object] = {
    "namespace": SQS_NAMESPACE,
    "endpoint_url": SQS_ENDPOINT_URL,
    "region_name": AWS_REGION,
    "visibility_timeout": SQS_VISIBILITY_TIMEOUT_MS,
    "create_queues": SQS_CREATE_QUEUES,
    "payload_bucket": SQS_PAYLOAD_BUCKET,
    "payload_threshold": SQS_PAYLOAD_THRESHOLD or None,
}
if is_loopback(SQS_ENDPOINT_URL) and not env_optional("AWS_ACCESS_KEY_ID"):
    # A local server takes any credentials; boto3 refuses to sign without some.
    _SQS_OPTIONS.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106

DRAMATIQ_BROKER = {
    "BROKER": "brokers.SQSBroker",
    "OPTIONS": _SQS_OPTIONS,
    # Explicit on purpose: without MIDDLEWARE django-dramatiq installs none at all (so no retries),
    # and its own default list names a Prometheus middleware that dramatiq 2 no longer ships.
    "MIDDLEWARE": [
        # Dramatiq's standard metrics and the worker's /metrics port; does nothing without METRICS_TOKEN.
        "web.metrics.worker.WorkerMetrics",
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        # Lets run_django_task tell a last attempt (its result FAILED) from one Retries will retry.
        "dramatiq.middleware.CurrentMessage",
        # Records every run (web/ops) and skips repeated deliveries for actors with skip_repeats;
        # listed before Retries, so it sees whether Retries gave up.
        "web.ops.middleware.TaskRuns",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        # Sends the outbox rows whose direct send after commit failed (SQS was unreachable).
        "web.core.relay.OutboxRelay",
    ],
}

# --- Metrics for Prometheus (README, "Metrics") ------------------------------------------------
# The bearer token Prometheus sends (`Authorization: Bearer <token>`) to the web's /metrics and the
# workers' port. Unset turns metrics off: /metrics is a 404 and workers neither count nor listen.
METRICS_TOKEN = env_optional("METRICS_TOKEN")
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < METRICS_TOKEN_MIN_LENGTH:
    refuse(
        f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters (it guards /metrics), "
        "e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))'."
    )
# Where each worker process answers GET /metrics for all of them: Dramatiq's usual port.
METRICS_WORKER_HOST = env_str("METRICS_WORKER_HOST", "0.0.0.0")  # noqa: S104 (Prometheus scrapes from elsewhere)
METRICS_WORKER_PORT = env_int("METRICS_WORKER_PORT", 9191)
if not 1 <= METRICS_WORKER_PORT <= 65535:
    refuse(f"METRICS_WORKER_PORT must be a TCP port (1-65535), not {METRICS_WORKER_PORT}.")
# The processes of one gunicorn or dramatiq run count in files under here (a directory per run,
# removed once its run is over); give each server on a machine its own if they share a user.
METRICS_DIR = env_str("METRICS_DIR", str(Path(tempfile.gettempdir()) / "offload-metrics"))
# Queue depths and the outbox backlog are read when scraped, at most once per this long per
# process: each queue costs two SQS requests (the queue and its dead-letter queue).
METRICS_QUEUE_CACHE_MS = env_int("METRICS_QUEUE_CACHE_MS", 15_000)

# Django's task API (django.tasks) on the same broker and workers: `@task` functions are enqueued after
# commit, run by the workers, and their results kept in the database (README, "Using django.tasks").
TASKS = {
    "default": {
        "BACKEND": "web.core.django_tasks.SQSTaskBackend",
        # The Django queue names tasks may use; each is the dramatiq queue of that name unless
        # OPTIONS["queue_map"] sends it elsewhere. Workers consume every one of them.
        "QUEUES": ["default"],
        # max_retries (0: a task runs once, as with Django's own backends), min_backoff and
        # max_backoff (ms; dramatiq's 15 s doubling up to 7 days when unset), time_limit (ms; 10
        # minutes when unset), queue_map. A task's own `@task(max_retries=...)` wins over these.
        "OPTIONS": {"max_retries": 0},
    }
}

# --- Site: mail, uploads, outbox -----------------------------------------------------------------
# Mail goes to the console unless SMTP_HOST is set (Django's MAILERS, not the deprecated EMAIL_*).
SMTP_HOST = env_optional("SMTP_HOST")
if SMTP_HOST:
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": SMTP_HOST,
                "port": env_int("SMTP_PORT", 587),
                "username": env_str("SMTP_USERNAME", ""),
                "password": env_str("SMTP_PASSWORD", ""),
                "use_tls": env_bool("SMTP_USE_TLS", default=True),
                "timeout": 10,
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "web.core.mail.ReadableConsoleBackend"}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "offload <noreply@localhost>")
# Links in mails are absolute: the worker that writes them has no request to take the host from.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
ACCOUNT_CONFIRMATION_MAX_AGE_S = env_int("ACCOUNT_CONFIRMATION_MAX_AGE_S", 3 * 24 * 60 * 60)
# Rate limits (web.accounts.throttle; README, "Rate limits", says why these numbers). The format is
# the `limits` library's: "20/hour", "5 per 15 minutes".
RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS = _rate_limit("RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS", "20/hour")
RATE_LIMIT_LOGIN_FAILURES_PER_IP = _rate_limit("RATE_LIMIT_LOGIN_FAILURES_PER_IP", "60/hour")
RATE_LIMIT_SIGNUP_MAILS_PER_ADDRESS = _rate_limit("RATE_LIMIT_SIGNUP_MAILS_PER_ADDRESS", "3/hour")
RATE_LIMIT_SIGNUP_MAILS_PER_IP = _rate_limit("RATE_LIMIT_SIGNUP_MAILS_PER_IP", "10/hour")
# Rate limits count per client IP address. Behind proxies that append it to X-Forwarded-For (a load
# balancer: 1), it is the TRUSTED_PROXY_HOPS-th entry from the right; at 0 only the connection's
# address counts (with a balancer in front, that is the balancer's, shared by every visitor).
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "images:list"
LOGOUT_REDIRECT_URL = "home"

# Uploads: files above this many bytes are refused before Pillow looks at them.
IMAGE_MAX_BYTES = env_int("IMAGE_MAX_BYTES", 30 * 1024 * 1024)
# Decompression-bomb guard: images with more pixels than this are refused (a 24 MP photo is fine).
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 64_000_000)
# ...and images whose decoded pixels take more memory than this: pixels weigh what their mode costs
# (4 bytes for colour, 1 for greyscale or palette; JPEGs count at the reduced scale they decode at).
# 128 MiB takes an 8K (7680 x 4320) RGBA image, refuses an 8000 x 8000 one (244 MiB); a thumbnail
# job needs about 1.3 times this at its peak, and each worker thread may run one.
IMAGE_MAX_DECODED_BYTES = env_int("IMAGE_MAX_DECODED_BYTES", 128 * 1024 * 1024)

# The outbox relay (a thread in each worker process) looks for unsent messages this often.
OUTBOX_RELAY_INTERVAL_MS = env_int("OUTBOX_RELAY_INTERVAL_MS", 2_000)
# A fresh outbox row is left to the process that committed it for this long before the relay may send it.
OUTBOX_RELAY_GRACE_MS = env_int("OUTBOX_RELAY_GRACE_MS", 30_000)
# A request waits at most this long for its messages to reach SQS; a slower send goes on after the
# response (the messages are safe in the outbox either way).
OUTBOX_SEND_WAIT_MS = env_int("OUTBOX_SEND_WAIT_MS", 500)
# After SQS failed a direct send, web processes leave new messages to the relay for this long.
OUTBOX_DIRECT_SEND_PAUSE_MS = env_int("OUTBOX_DIRECT_SEND_PAUSE_MS", 10_000)
# Relay attempts SQS refuses (too large, its queue gone) before an outbox row is set aside for an
# operator on /ops/. Attempts while SQS cannot be reached at all do not count.
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 10)
# Sends that outlive their request, per web process; a request beyond this many leaves its messages
# to the relay at once instead of starting another thread.
OUTBOX_MAX_BACKGROUND_SENDS = env_int("OUTBOX_MAX_BACKGROUND_SENDS", 8)
# Task-run records older than this are deleted by the daily prune_task_runs job.
TASK_RUN_RETENTION_DAYS = env_int("TASK_RUN_RETENTION_DAYS", 30)
# Finished django.tasks results older than this are deleted by the same daily job; waiting and
# running ones stay. get_result raises TaskResultDoesNotExist for a deleted one.
TASK_RESULT_RETENTION_DAYS = env_int("TASK_RESULT_RETENTION_DAYS", 30)

# --- Scheduler and GitHub ------------------------------------------------------------------------
# The poll reads the public API unless pointed elsewhere (a GitHub Enterprise host, a local fake).
GITHUB_API_URL = env_str("GITHUB_API_URL", "https://api.github.com").rstrip("/")
# Optional: without a token GitHub allows far fewer search requests per minute.
GITHUB_TOKEN = env_optional("GITHUB_TOKEN")
# Connect, read and write timeout of each GitHub request.
GITHUB_TIMEOUT_MS = env_int("GITHUB_TIMEOUT_MS", 10_000)
# The whole GitHub request, connecting to the last byte, may take this long.
GITHUB_DEADLINE_MS = env_int("GITHUB_DEADLINE_MS", 30_000)
# The poll reads at most this many bytes of an answer (decompressed). A page of 100 search results,
# some 80 fields each and most of them URLs, stays well under 1 MB.
GITHUB_MAX_RESPONSE_BYTES = env_int("GITHUB_MAX_RESPONSE_BYTES", 5 * 1024 * 1024)
# How often the scheduler enqueues the poll; slots are aligned to the clock (:00, :10, ...).
GITHUB_POLL_INTERVAL_MS = env_int("GITHUB_POLL_INTERVAL_MS", 10 * 60 * 1000)
# The leader's database lease lasts this long unless renewed; a dead leader is replaced within
# about SCHEDULER_LEASE_MS + SCHEDULER_LEASE_RENEW_MS. Keep it well above any clock skew between hosts.
SCHEDULER_LEASE_MS = env_int("SCHEDULER_LEASE_MS", 30_000)
# How often the leader renews its lease and the others try to take it.
SCHEDULER_LEASE_RENEW_MS = env_int("SCHEDULER_LEASE_RENEW_MS", 10_000)
# Schedulers with the same lease name elect one leader. Two names on one database give two leaders
# (a deliberate split brain): the (job, slot) records still let each slot's job through only once.
SCHEDULER_LEASE_NAME = env_str("SCHEDULER_LEASE_NAME", "scheduler")
# APScheduler logs every run at INFO, lease renewals included; the scheduler logs what matters itself.
LOGGING["loggers"]["apscheduler"] = {"level": "WARNING"}

# --- Site: reports and exports -------------------------------------------------------------------
# A scheduled report run is skipped when another was requested less than this long ago.
REPORT_MIN_INTERVAL_MS = env_int("REPORT_MIN_INTERVAL_MS", 5 * 60 * 1000)
# A report run still queued or running after this long is given up, so a new one can start.
REPORT_STALE_AFTER_MS = env_int("REPORT_STALE_AFTER_MS", 30 * 60 * 1000)
# Rows an export reads per database round trip; progress is saved once per chunk.
EXPORT_CHUNK_ROWS = env_int("EXPORT_CHUNK_ROWS", 5_000)
# Finished exports (and their files) are deleted this long after they finish.
EXPORT_RETENTION_HOURS = env_int("EXPORT_RETENTION_HOURS", 7 * 24)
# An export whose progress has not moved for this long (saved every chunk, well under a second apart)
# is given up: when its owner starts another, and by the daily prune.
EXPORT_STALE_AFTER_MS = env_int("EXPORT_STALE_AFTER_MS", 15 * 60 * 1000)
# Finished exports a user may keep at once; another needs one of them deleted (or expired) first.
EXPORT_MAX_KEPT_PER_USER = env_int("EXPORT_MAX_KEPT_PER_USER", 10)
# Export files live in STORAGES["exports"]: private local files under MEDIA_ROOT/exports (never served
# directly; downloads go through the owner-checked view), or an S3 bucket when EXPORTS_S3_BUCKET is set.
EXPORTS_S3_BUCKET = env_optional("EXPORTS_S3_BUCKET")
# Multipart chunks an export upload keeps in memory (and sends in parallel), 8 MiB each.
EXPORTS_S3_UPLOAD_CHUNKS = env_int("EXPORTS_S3_UPLOAD_CHUNKS", 4)
if EXPORTS_S3_BUCKET:
    from web.exports.s3 import exports_on_s3

    STORAGES["exports"] = exports_on_s3(
        bucket=EXPORTS_S3_BUCKET,
        prefix=env_str("EXPORTS_S3_PREFIX", "exports"),
        endpoint_url=env_optional("EXPORTS_S3_ENDPOINT_URL"),
        region=AWS_REGION,
        addressing_style=env_str("EXPORTS_S3_ADDRESSING_STYLE", "path"),
        upload_chunks=EXPORTS_S3_UPLOAD_CHUNKS,
    )
else:
    STORAGES["exports"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT / "exports", "base_url": None},
    }

# --- Site: uploaded media ------------------------------------------------------------------------
# Uploaded images live in STORAGES["default"]: files under MEDIA_ROOT, or an S3 bucket when
# MEDIA_S3_BUCKET is set (AWS Lambda has no disk its functions share). Private either way: the
# owner-checked views serve them.
MEDIA_S3_BUCKET = env_optional("MEDIA_S3_BUCKET")
if MEDIA_S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MEDIA_S3_BUCKET,
            "location": env_str("MEDIA_S3_PREFIX", "media"),
            "endpoint_url": env_optional("MEDIA_S3_ENDPOINT_URL"),
            "region_name": AWS_REGION,
            "addressing_style": env_str("MEDIA_S3_ADDRESSING_STYLE", "path"),
            "signature_version": "s3v4",
            "default_acl": None,
        },
    }
