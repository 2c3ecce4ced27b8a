"""Test data and small helpers for the API tests."""

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from shop.models import Category, Order, OrderLine, Product

# sku: (name, price, stock, category slug, active)
PRODUCTS = {
    "BK-001": ("Dune", "9.99", 10, "books", True),
    "BK-002": ("Neuromancer", "8.50", 3, "books", True),
    "BK-003": ("The Left Hand of Darkness", "12.00", 0, "books", True),
    "BK-004": ("Old Atlas", "45.00", 2, "books", False),
    "GM-001": ("Chess Set", "25.00", 5, "games", True),
    "GM-002": ("Go Board", "60.00", 1, "games", True),
    "GM-003": ("Playing Cards", "3.20", 100, "games", True),
    "MU-001": ("Kind of Blue", "14.99", 7, "music", True),
    "MU-002": ("Blue Train, First Pressing", "1234.50", 1, "music", True),
}
CATEGORIES = {"books": "Books", "games": "Games", "music": "Music", "garden": "Garden"}
ACTIVE_SKUS = sorted(sku for sku, row in PRODUCTS.items() if row[4])


@pytest.fixture
def catalog(db):
    categories = {slug: Category.objects.create(slug=slug, name=name) for slug, name in CATEGORIES.items()}
    products = {}
    for sku, (name, price, stock, category, active) in PRODUCTS.items():
        products[sku] = Product.objects.create(sku=sku, name=name, price=Decimal(price), stock=stock,
                                               category=categories[category], active=active)
    return SimpleNamespace(categories=categories, products=products)


@pytest.fixture
def make_order(catalog):
    """Creates an order directly in the database (no API, no stock taken): make_order(("BK-001", 2), ...)."""
    counter = iter(range(1, 10_000))

    def make(*lines, status=Order.Status.PENDING, email="reader@example.com"):
        order = Order.objects.create(number=f"ORD-9{next(counter):05d}", email=email, status=status)
        for sku, quantity in lines:
            product = catalog.products[sku]
            OrderLine.objects.create(order=order, product=product, quantity=quantity, unit_price=product.price)
        return order

    return make


class Api:
    """The Django test client, speaking JSON."""

    def __init__(self, client):
        self.client = client

    def get(self, url, language=None, **extra):
        if language:
            extra["HTTP_ACCEPT_LANGUAGE"] = language
        response = self.client.get(url, **extra)
        return response.status_code, json.loads(response.content)

    def post(self, url, payload, language=None, raw=None, **extra):
        if language:
            extra["HTTP_ACCEPT_LANGUAGE"] = language
        body = raw if raw is not None else json.dumps(payload)
        response = self.client.post(url, data=body, content_type="application/json", **extra)
        return response.status_code, json.loads(response.content)

    def order(self, *lines, email="buyer@example.com", **extra):
        return self.post("/api/orders/", {"email": email, "lines": [{"sku": s, "quantity": q} for s, q in lines]},
                         **extra)


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def redis_client():
    from shop.services import redis

    return redis()
