"""Ids from PostgreSQL sequences. A sequence does not roll back with a test's transaction: tests that need
known ids ask for reset_sequences, which restarts every sequence of the test database, so they are right
only when no other process inserts into that database at the same time."""

import pytest

from shop.models import Category, Order, Product

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


def test_ids_start_at_one():
    books = Category.objects.create(name="Books")
    dune = Product.objects.create(category=books, sku="BK-001", name="Dune", price=10, stock=1)
    assert (books.id, dune.id) == (1, 1)


def test_the_first_product_is_at_products_1(api, catalog):
    status, body = api.get("/api/products/1/")
    assert status == 200
    assert body["sku"] == "BK-001"


def test_the_first_order_has_id_one_and_number_one(api, catalog):
    api.order(("GM-003", 1))
    order = Order.objects.get()
    assert (order.id, order.number) == (1, "ORD-000001")


def test_ids_follow_creation_order(catalog):
    assert [p.id for p in catalog.products.values()] == list(range(1, 10))
    assert [c.id for c in catalog.categories.values()] == [1, 2, 3, 4]
