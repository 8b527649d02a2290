"""Settings, read from the environment through django-environ.

Development defaults (DEBUG on, a SQLite file next to manage.py) let the product start with no
configuration. With DEBUG off the settings refuse to start without a real SECRET_KEY and turn on
the secure cookie and header settings that ``manage.py check --deploy`` asks for, and static
files are served by WhiteNoise (see docs/deployment.md).
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.log import DEFAULT_LOGGING

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

_DEV_SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY or (not DEBUG and SECRET_KEY == _DEV_SECRET_KEY):
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Where people reach the site (https://spawnctl.example.com), for the links a run's report
# carries into a pull request; empty: the address each request came to.
PUBLIC_URL = env.str("PUBLIC_URL", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "core",
    "components_app",
    "sessions_app",
]

# How long a request holding an Idempotency-Key may go without an answer before a retry takes
# it over, on a database that cannot tell whether it still runs (PostgreSQL and SQLite can).
IDEMPOTENCY_ABANDONED_SECONDS = env.int("IDEMPOTENCY_ABANDONED_SECONDS", default=300)

# The browsable API's login page (/api/auth/login/) lands here when no "next" says where to.
LOGIN_REDIRECT_URL = "/api/"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "config.middleware.RejectNulInQueryStringMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, as django-axes asks: it refuses a locked-out login before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts, so two processes spawning the
    # same parent serialize instead of failing with "database is locked" half-way through.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
# Times to the second, ISO order, everywhere a page shows one (the admin's included).
FORMAT_MODULE_PATH = ["sessions_app.operator.formats"]

# How long a runner holds a session it asked for without renewing (heartbeat) its lease.
SESSION_LEASE_SECONDS = env.int("SESSION_LEASE_SECONDS", default=600)

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

# Throttles count in the default cache. The default, local memory, counts per gunicorn worker
# (a client may get up to workers x rate); a cache the workers share counts exactly
# (scripts/serve-production uses a private file cache; see docs/deployment.md).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"].endswith(".RedisCache"):
    # A Redis that hangs must not hang every request that counts a throttle in it.
    CACHES["default"].setdefault("OPTIONS", {})
    CACHES["default"]["OPTIONS"].setdefault("socket_connect_timeout", 1.0)
    CACHES["default"]["OPTIONS"].setdefault("socket_timeout", 1.0)

# Proxies in front that append the client's address to X-Forwarded-For (nginx with
# $proxy_add_x_forwarded_for is one); 0 trusts no such header (see core/clients.py).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)


def _rate(name: str, default: str) -> str | None:
    """A throttle rate from the environment (``100/min``, ``5/s``); ``off`` turns it off."""
    value = env.str(name, default=default).strip()
    return None if value.lower() in ("", "off", "none") else value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.throttling.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    # Every API view, not only the view sets: JSON read as UTF-8, never a form parser.
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.StorableJSONParser"],
    # DRF's JSON written by orjson (core/api/renderers.py), and the browsable API.
    "DEFAULT_RENDERER_CLASSES": [
        "core.api.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [
        "core.api.throttling.UserThrottle",
        "core.api.throttling.AnonThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        scope: _rate(f"API_THROTTLE_{scope.upper()}", default)
        for scope, default in [("user", "1200/min"), ("anon", "60/min"), ("auth_failure", "20/min")]
    },
}

# django-axes: ADMIN_LOGIN_FAILURE_LIMIT failed admin logins for one username from one
# address lock that pair out for ADMIN_LOCKOUT_MINUTES (429), counted in the database so that
# every worker sees them; a successful login starts the count again.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.clients.client_address"
AXES_LOCKOUT_CALLABLE = "core.lockout.locked_out"
# Only failures are recorded, not a row per successful login.
AXES_DISABLE_ACCESS_LOG = True

SPECTACULAR_SETTINGS = {
    # The title names the file /api/schema/ downloads: the product's name, no spaces.
    "TITLE": "spawnctl",
    "DESCRIPTION": (
        "Spawns one agentic child session per component of a context and reports honestly "
        "which children are still running, failed (and why) or were cancelled."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.docs.document_idempotency_key",
    ],
    # Two fields are called "status": name their enums for what they are.
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "sessions_app.models.SessionStatus",
        "ResultStatusEnum": "sessions_app.workflows.types.RESULT_STATUSES",
    },
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "django.server": DEFAULT_LOGGING["formatters"]["django.server"],
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "django.server": DEFAULT_LOGGING["handlers"]["django.server"],
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Django's own logger has a console handler already; propagating to the root as well
    # printed every line (the dev server's startup line among them) twice. Configuring it
    # resets its children, so the dev server's request log is configured again as Django has it.
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.server": DEFAULT_LOGGING["loggers"]["django.server"],
        # django-axes announces its configuration at every start, commands included.
        "axes.apps": {"level": "WARNING"},
    },
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # A load balancer polls the health check over plain HTTP, straight at gunicorn.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    # gunicorn serves the admin's and the API docs' static files itself: WhiteNoise answers
    # from what collectstatic gathered, compressed and under content-hashed names cached for
    # a year, so production needs no separate web server or bucket for them. (With DEBUG on,
    # runserver serves them; the manifest storage needs collectstatic to have run.)
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
