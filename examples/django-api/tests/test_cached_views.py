"""What the views keep in Redis: which keys, for how long, and when they are dropped."""

import pytest

from shop.models import Category, Product
from shop.signals import CATEGORIES_KEY, PRODUCTS_VERSION_KEY, STATS_KEY

pytestmark = pytest.mark.django_db


def cache_keys(redis_client, pattern="*"):
    return sorted(key.decode() for key in redis_client.keys(pattern))


def test_a_product_list_is_one_key(api, catalog, redis_client):
    api.get("/api/products/?category=books")
    keys = cache_keys(redis_client, "*catalog:products:*")
    assert len(keys) == 1
    assert keys[0].startswith(":1:catalog:products:v1:en:")


def test_lists_in_three_languages_are_three_keys(api, catalog, redis_client):
    for language in ("en", "fr", "de"):
        api.get("/api/products/", language=language)
    assert [key.split(":")[5] for key in cache_keys(redis_client, "*catalog:products:v*")] == ["de", "en", "fr"]


def test_the_cached_list_is_what_was_sent(api, catalog):
    from django.core.cache import cache

    first = api.get("/api/products/?ordering=price")[1]
    key = next(k.decode() for k in cache.client.keys("*catalog:products:v*"))
    assert cache.get(key.split(":", 2)[2]) == first


def test_a_saved_product_moves_the_catalog_version(api, catalog, redis_client):
    assert redis_client.get(":1:" + PRODUCTS_VERSION_KEY) is None
    api.get("/api/products/")
    assert redis_client.get(":1:" + PRODUCTS_VERSION_KEY) == b"1"
    catalog.products["GM-001"].save()
    assert redis_client.get(":1:" + PRODUCTS_VERSION_KEY) == b"2"
    catalog.products["GM-001"].save()
    assert redis_client.get(":1:" + PRODUCTS_VERSION_KEY) == b"3"


def test_the_new_version_makes_a_new_list(api, catalog, redis_client):
    api.get("/api/products/")
    Product.objects.create(category=catalog.categories["garden"], sku="GD-001", name="Rake", price=15, stock=3)
    body = api.get("/api/products/")[1]
    assert body["count"] == 9
    assert len(cache_keys(redis_client, "*catalog:products:v*")) == 2


def test_a_deleted_product_leaves_the_list(api, catalog):
    api.get("/api/products/")
    catalog.products["GM-003"].delete()
    assert api.get("/api/products/")[1]["count"] == 7


def test_categories_are_kept_five_minutes(api, catalog, redis_client):
    api.get("/api/categories/")
    assert 295 <= redis_client.ttl(":1:" + CATEGORIES_KEY) <= 300


def test_product_lists_are_kept_two_minutes(api, catalog, redis_client):
    api.get("/api/products/")
    (key,) = cache_keys(redis_client, "*catalog:products:v*")
    assert 115 <= redis_client.ttl(key) <= 120


def test_stats_are_kept_a_minute(api, catalog, redis_client):
    api.get("/api/stats/")
    assert 55 <= redis_client.ttl(":1:" + STATS_KEY) <= 60


def test_bulk_changes_bypass_the_signals(api, catalog):
    before = api.get("/api/categories/")[1]
    Category.objects.bulk_create([Category(name="Toys", slug="toys")])
    assert api.get("/api/categories/")[1] == before


def test_a_deleted_category_leaves_the_cache(api, catalog):
    api.get("/api/categories/")
    catalog.categories["garden"].delete()
    assert [c["slug"] for c in api.get("/api/categories/")[1]["results"]] == ["books", "games", "music"]


def test_an_order_drops_the_stats(api, catalog, redis_client):
    api.get("/api/stats/")
    assert redis_client.exists(":1:" + STATS_KEY)
    api.order(("GM-003", 2))
    assert not redis_client.exists(":1:" + STATS_KEY)
    assert api.get("/api/stats/")[1]["revenue"] == "6.40"


def test_a_status_change_drops_the_stats(api, catalog):
    number = api.order(("MU-002", 1))[1]["number"]
    assert api.get("/api/stats/")[1]["revenue"] == "1234.50"
    api.post(f"/api/orders/{number}/status/", {"status": "cancelled"})
    assert api.get("/api/stats/")[1]["revenue"] == "0.00"


def test_the_sales_report_uses_cache_page(api, make_order, redis_client):
    make_order(("BK-001", 1))
    api.get("/api/reports/sales/")
    assert any(key.startswith(":1:views.decorators.cache.cache_page") for key in cache_keys(redis_client))


def test_the_sales_report(api, make_order):
    make_order(("BK-001", 2), ("GM-001", 1))
    make_order(("BK-002", 1), status="paid")
    make_order(("MU-002", 1), status="cancelled")
    assert api.get("/api/reports/sales/")[1] == {"categories": {
        "books": {"units": 3, "revenue": "28.48"},
        "games": {"units": 1, "revenue": "25.00"},
    }}


def test_the_rate_limit_is_one_key_with_a_lifetime(api, catalog, redis_client):
    api.order(("GM-003", 1))
    api.order(("GM-003", 1))
    assert redis_client.get("ratelimit:orders:127.0.0.1") == b"2"
    assert 55 <= redis_client.ttl("ratelimit:orders:127.0.0.1") <= 60


def test_what_an_order_leaves_in_redis(api, catalog, redis_client):
    api.order(("GM-003", 1))
    assert cache_keys(redis_client) == ["orders:next-number", "ratelimit:orders:127.0.0.1"]
