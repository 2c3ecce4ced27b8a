"""What every test of the shop needs: compiled translation catalogs, an empty Redis and English.

Like most Django suites, these tests own their services: each one starts from an empty Redis database
(FLUSHDB) and from a database in which only its own rows exist, and asserts exact query counts, row counts,
ids, order numbers and cache keys. That is right as long as one test process at a time uses a PostgreSQL
server and a Redis database; README.md shows what happens when several do.
"""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parent / "shop" / "locale"


def compile_catalogs():
    """shop/locale/*/LC_MESSAGES/django.po to .mo, as `manage.py compilemessages` does, but each written to
    a temporary file then renamed over the old one: several test processes may start at once in this
    directory, and none may read a half-written catalog."""
    for po in sorted(LOCALE.glob("*/LC_MESSAGES/django.po")):
        descriptor, temporary = tempfile.mkstemp(dir=po.parent, prefix=".django-", suffix=".mo")
        os.close(descriptor)
        try:
            subprocess.run(["msgfmt", "--check-format", "-o", temporary, str(po)], check=True)
            os.chmod(temporary, 0o644)
            os.replace(temporary, po.with_suffix(".mo"))
        except FileNotFoundError:
            raise pytest.UsageError("msgfmt not found: install gettext (apt-get install gettext)") from None
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)


def pytest_configure(config):
    compile_catalogs()


@pytest.fixture(autouse=True)
def empty_cache():
    """FLUSHDB before every test: cached answers, order numbers, rate limits and the site language of an
    earlier test must not leak into this one."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def english():
    """Translation activation is a global of the process (of the thread): each test starts in English, and
    one that activates another language cannot leave it active for the next."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()
