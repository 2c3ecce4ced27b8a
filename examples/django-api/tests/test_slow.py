"""The slow ones: waiting for Redis to expire keys, and a catalog and an order history of realistic size."""

import time
from decimal import Decimal

import pytest
from django.core.cache import cache

from shop.models import Category, Order, OrderLine, Product

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_a_cached_value_expires():
    cache.set("short-lived", "value", timeout=2)
    assert cache.get("short-lived") == "value"
    time.sleep(2.5)
    assert cache.get("short-lived") is None


def test_touch_extends_a_life():
    cache.set("extended", "value", timeout=2)
    assert cache.touch("extended", 5)
    time.sleep(2.5)
    assert cache.get("extended") == "value"


def test_add_succeeds_again_after_expiry():
    assert cache.add("lock", "first", timeout=2)
    assert not cache.add("lock", "second", timeout=2)
    time.sleep(2.5)
    assert cache.add("lock", "third", timeout=1)
    assert cache.get("lock") == "third"


def test_the_rate_limit_window_ends(api, catalog, settings, redis_client):
    settings.ORDER_RATE_LIMIT = 2
    settings.ORDER_RATE_WINDOW = 3
    assert [api.order(("GM-003", 1))[0] for _ in range(3)] == [201, 201, 429]
    # The window started with the first order; wait for what is left of it.
    time.sleep(max(0, redis_client.pttl("ratelimit:orders:127.0.0.1")) / 1000 + 0.2)
    status, body = api.order(("GM-003", 1))
    assert status == 201
    assert body["number"] == "ORD-000003"


def test_a_large_catalog(api, django_assert_num_queries):
    categories = Category.objects.bulk_create(
        [Category(name=f"Shelf {i:02d}", slug=f"shelf-{i:02d}") for i in range(30)])
    Product.objects.bulk_create([
        Product(category=categories[i % 30], sku=f"SKU-{i:05d}", name=f"Item {i:05d}", slug=f"item-{i:05d}",
                price=Decimal(i % 97) + Decimal("0.99"), stock=i % 13, active=i % 50 != 0)
        for i in range(3000)
    ])
    seen = []
    page, pages = 1, None
    while pages is None or page <= pages:
        with django_assert_num_queries(2):
            body = api.get(f"/api/products/?page_size=50&page={page}&ordering=price")[1]
        pages = body["pages"]
        seen += [(Decimal(p["price"]), p["sku"]) for p in body["results"]]
        page += 1
    assert len(seen) == 3000 - 60
    assert seen == sorted(seen, key=lambda row: row[0]) and len({sku for _, sku in seen}) == len(seen)
    counts = {c["slug"]: c["products"] for c in api.get("/api/categories/")[1]["results"]}
    assert sum(counts.values()) == 2940
    assert counts["shelf-00"] == 80


def test_a_year_of_orders(api, catalog):
    products = list(Product.objects.active())
    orders = Order.objects.bulk_create(
        [Order(number=f"ORD-{i:06d}", email=f"c{i}@example.com",
               status=["pending", "paid", "shipped", "cancelled"][i % 4]) for i in range(1, 2001)])
    lines = [OrderLine(order=order, product=products[(order.id + k) % len(products)], quantity=1 + k,
                       unit_price=products[(order.id + k) % len(products)].price)
             for order in orders for k in range(3)]
    OrderLine.objects.bulk_create(lines)
    expected = sum((line.quantity * line.unit_price for line in lines if line.order.status != "cancelled"),
                   Decimal("0.00"))
    stats = api.get("/api/stats/")[1]
    assert (stats["orders"], Decimal(stats["revenue"])) == (2000, expected)
    report = api.get("/api/reports/sales/")[1]["categories"]
    assert sum(Decimal(row["revenue"]) for row in report.values()) == expected
    assert api.order(("GM-003", 1))[1]["number"] == "ORD-002001"


def test_selling_out(api, catalog, settings):
    settings.ORDER_RATE_LIMIT = 1000
    numbers = [api.order(("GM-003", 1))[1]["number"] for _ in range(100)]
    assert numbers == [f"ORD-{i:06d}" for i in range(1, 101)]
    assert api.order(("GM-003", 1)) == (409, {"errors": {"lines": ["Only 0 left of Playing Cards."]}})
    assert Product.objects.get(sku="GM-003").stock == 0
    assert api.order(("GM-001", 1))[1]["number"] == "ORD-000102"
