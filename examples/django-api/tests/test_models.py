"""The models on their own: slugs, constraints, stock, totals, status transitions and counters."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from shop.models import Category, Counter, InvalidTransition, Order, OrderLine, OutOfStock, Product

pytestmark = pytest.mark.django_db

Status = Order.Status


@pytest.mark.parametrize("name, slug", [
    ("Books", "books"),
    ("Board Games", "board-games"),
    ("Sci-Fi & Fantasy", "sci-fi-fantasy"),
    ("  Music  ", "music"),
    ("Café Culture", "cafe-culture"),
    ("Kids 3+", "kids-3"),
])
def test_category_slug_from_name(name, slug):
    assert Category.objects.create(name=name).slug == slug


def test_category_keeps_its_own_slug():
    assert Category.objects.create(name="Books", slug="livres").slug == "livres"


def test_category_slugs_are_unique():
    Category.objects.create(name="Books")
    with pytest.raises(IntegrityError):
        Category.objects.create(name="Books")


def test_category_str():
    assert str(Category(name="Games")) == "Games"


@pytest.mark.parametrize("name, slug", [
    ("Dune", "dune"),
    ("The Left Hand of Darkness", "the-left-hand-of-darkness"),
    ("Blue Train, First Pressing", "blue-train-first-pressing"),
    ("Go Board 19×19", "go-board-1919"),
    ("Œuvres complètes", "uvres-completes"),
    ("  Chess   Set ", "chess-set"),
])
def test_product_slug_from_name(catalog, name, slug):
    product = Product.objects.create(category=catalog.categories["books"], sku="X-1", name=name, price=1)
    assert product.slug == slug


def test_product_keeps_its_own_slug(catalog):
    product = Product.objects.create(category=catalog.categories["books"], sku="X-1", name="Dune", slug="dune-1965",
                                     price=1)
    assert product.slug == "dune-1965"


def test_product_str(catalog):
    assert str(catalog.products["BK-001"]) == "Dune (BK-001)"


def test_skus_are_unique(catalog):
    with pytest.raises(IntegrityError):
        Product.objects.create(category=catalog.categories["books"], sku="BK-001", name="Dune again", price=1)


def test_database_refuses_a_negative_price(catalog):
    with pytest.raises(IntegrityError, match="product_price_not_negative"):
        Product.objects.create(category=catalog.categories["books"], sku="X-1", name="Refund", price=Decimal("-1"))


def test_validation_refuses_a_negative_price(catalog):
    product = Product(category=catalog.categories["books"], sku="X-1", name="Refund", slug="refund",
                      price=Decimal("-0.01"))
    with pytest.raises(ValidationError) as raised:
        product.full_clean()
    assert list(raised.value.message_dict) == ["price"]


def test_a_free_product_is_valid(catalog):
    product = Product(category=catalog.categories["books"], sku="X-1", name="Leaflet", slug="leaflet", price=0)
    product.full_clean()


@pytest.mark.parametrize("sku, quantity, left", [
    ("BK-001", 1, 9),
    ("BK-001", 10, 0),
    ("GM-003", 99, 1),
    ("GM-002", 1, 0),
    ("BK-002", 2, 1),
])
def test_reserve_takes_from_stock(catalog, sku, quantity, left):
    product = catalog.products[sku]
    product.reserve(quantity)
    assert product.stock == left
    assert Product.objects.get(sku=sku).stock == left


@pytest.mark.parametrize("sku, quantity, available", [
    ("BK-003", 1, 0),
    ("GM-002", 2, 1),
    ("BK-001", 11, 10),
])
def test_reserve_more_than_the_stock_fails_and_takes_nothing(catalog, sku, quantity, available):
    product = catalog.products[sku]
    with pytest.raises(OutOfStock) as raised:
        product.reserve(quantity)
    assert raised.value.available == available
    assert Product.objects.get(sku=sku).stock == available


def test_reserve_uses_the_stock_in_the_database_not_the_stale_object(catalog):
    stale = Product.objects.get(sku="GM-002")
    catalog.products["GM-002"].reserve(1)
    with pytest.raises(OutOfStock):
        stale.reserve(1)


def test_restock(catalog):
    product = catalog.products["BK-003"]
    product.restock(4)
    assert Product.objects.get(sku="BK-003").stock == 4


@pytest.mark.parametrize("lines, total", [
    ([("BK-001", 1)], "9.99"),
    ([("BK-001", 3)], "29.97"),
    ([("BK-001", 1), ("BK-002", 2)], "26.99"),
    ([("GM-003", 10), ("MU-002", 1)], "1266.50"),
    ([("MU-001", 2), ("GM-001", 1), ("GM-002", 1)], "114.98"),
])
def test_order_total_sums_its_lines(make_order, lines, total):
    assert make_order(*lines).total == Decimal(total)


def test_an_order_without_lines_totals_zero(make_order):
    assert make_order().total == Decimal("0.00")


def test_line_keeps_the_price_it_was_sold_at(catalog, make_order):
    order = make_order(("BK-001", 2))
    Product.objects.filter(sku="BK-001").update(price=Decimal("19.99"))
    assert order.lines.get().unit_price == Decimal("9.99")
    assert order.total == Decimal("19.98")


ALLOWED = [(Status.PENDING, Status.PAID), (Status.PENDING, Status.CANCELLED),
           (Status.PAID, Status.SHIPPED), (Status.PAID, Status.CANCELLED)]
REFUSED = [(old, new) for old in Status for new in Status if (old, new) not in ALLOWED]


@pytest.mark.parametrize("old, new", ALLOWED)
def test_allowed_transition(make_order, old, new):
    order = make_order(("BK-001", 1), status=old)
    order.transition(new)
    assert Order.objects.get(pk=order.pk).status == new


@pytest.mark.parametrize("old, new", REFUSED)
def test_refused_transition(make_order, old, new):
    order = make_order(("BK-001", 1), status=old)
    with pytest.raises(InvalidTransition):
        order.transition(new)
    assert Order.objects.get(pk=order.pk).status == old


def test_cancelling_puts_the_items_back(catalog, make_order):
    order = make_order(("BK-001", 2), ("GM-003", 5))
    order.transition(Status.CANCELLED)
    assert Product.objects.get(sku="BK-001").stock == 12
    assert Product.objects.get(sku="GM-003").stock == 105


def test_shipping_leaves_the_stock_alone(catalog, make_order):
    order = make_order(("BK-001", 2), status=Status.PAID)
    order.transition(Status.SHIPPED)
    assert Product.objects.get(sku="BK-001").stock == 10


def test_database_refuses_a_line_of_zero(catalog, make_order):
    order = make_order()
    with pytest.raises(IntegrityError, match="order_line_quantity_positive"):
        OrderLine.objects.create(order=order, product=catalog.products["BK-001"], quantity=0, unit_price=1)


def test_order_numbers_are_unique(make_order):
    order = make_order()
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            Order.objects.create(number=order.number, email="other@example.com")


def test_counter_starts_at_one():
    assert Counter.increment("signups") == 1
    assert Counter.objects.count() == 1


def test_counter_counts():
    for expected in range(1, 6):
        assert Counter.increment("signups") == expected
    assert Counter.value_of("signups") == 5


def test_counter_by_a_step():
    Counter.increment("bytes", by=512)
    assert Counter.increment("bytes", by=1024) == 1536


def test_counters_are_independent():
    Counter.increment("a")
    Counter.increment("a")
    Counter.increment("b")
    assert dict(Counter.objects.values_list("name", "value")) == {"a": 2, "b": 1}


def test_counter_value_of_an_unknown_name_is_zero():
    assert Counter.value_of("never") == 0
    assert Counter.objects.count() == 0


def test_counter_str():
    Counter.increment("visits", by=3)
    assert str(Counter.objects.get()) == "visits=3"
