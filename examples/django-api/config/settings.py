"""Settings of the shop API, read from the environment the way a twelve-factor app is configured.

DATABASE_URL (postgresql://user:password@host:port/name) and REDIS_URL (redis://host:port/db) name the
servers: docker-compose.yml sets them to its `db` and `redis` services, testfleet's native backend to the
servers it starts for each group. Without them the settings fall back to servers on localhost, as on a
developer's machine. The test runner creates `test_<name>` on that PostgreSQL server; Redis has no test
copy, so the tests use (and flush) the very database REDIS_URL names.
"""

import os
import urllib.parse
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def database_from_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {url!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": urllib.parse.unquote(parts.path.lstrip("/")) or "postgres",
        "USER": urllib.parse.unquote(parts.username or ""),
        "PASSWORD": urllib.parse.unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # Bounded waits: a test blocked on another process's lock fails instead of hanging the run.
        "OPTIONS": {"connect_timeout": 10, "options": "-c lock_timeout=10000 -c statement_timeout=60000"},
    }


SECRET_KEY = os.environ.get("SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "shop.apps.ShopConfig",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "shop.middleware.SiteLanguageMiddleware",
]

ROOT_URLCONF = "config.urls"

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres:postgres@localhost:5432/postgres")
    ),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
CACHES = {
    "default": {
        "BACKEND": "shop.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "TIMEOUT": 300,
    },
}

# Orders allowed per client address and minute.
ORDER_RATE_LIMIT = 5
ORDER_RATE_WINDOW = 60

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("fr", "Français"),
    ("de", "Deutsch"),
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
