"""State the shop keeps in Redis rather than in PostgreSQL: order numbers, the site's default language and
the order rate limit. All of them use fixed key names, shared by every process of a deployment."""

from django.conf import settings
from django.core.cache import cache

ORDER_NUMBER_KEY = "orders:next-number"
SITE_LANGUAGE_KEY = "site:language"


def redis():
    """The Redis client behind the default cache (shop.cache.RedisCache)."""
    return cache.client


def next_order_number():
    """ORD-000001, ORD-000002, ...: INCR is atomic across processes. A Redis that lost the counter (a new
    server, a flush) restarts it from the highest number in the database."""
    from shop.models import Order

    client = redis()
    if not client.exists(ORDER_NUMBER_KEY):
        last = Order.objects.order_by("-number").values_list("number", flat=True).first()
        client.set(ORDER_NUMBER_KEY, int(last[4:]) if last else 0, nx=True)
    return f"ORD-{client.incr(ORDER_NUMBER_KEY):06d}"


def site_language():
    """The language of responses to clients that send no Accept-Language, set at run time by the staff."""
    value = redis().get(SITE_LANGUAGE_KEY)
    return value.decode() if value else settings.LANGUAGE_CODE


def set_site_language(code):
    if code not in dict(settings.LANGUAGES):
        raise ValueError(code)
    redis().set(SITE_LANGUAGE_KEY, code)


def rate_limit(scope, identity, limit, window):
    """Counts a hit of `identity` in `scope`; returns (allowed, seconds until the window ends). The window
    starts at the first hit and lasts `window` seconds."""
    key = f"ratelimit:{scope}:{identity}"
    with redis().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
    return count <= limit, max(ttl, 1)
