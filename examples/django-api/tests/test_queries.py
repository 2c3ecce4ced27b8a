"""ORM queries: the querysets behind the API, and the row counts and query counts they promise."""

from decimal import Decimal

import pytest
from django.db.models import ProtectedError

from shop.models import Category, Order, OrderLine, Product
from tests.conftest import ACTIVE_SKUS, PRODUCTS

pytestmark = pytest.mark.django_db

Status = Order.Status


def skus(queryset):
    return sorted(queryset.values_list("sku", flat=True))


def test_the_catalog_is_the_only_data(catalog):
    assert Category.objects.count() == 4
    assert Product.objects.count() == 9
    assert Order.objects.count() == 0


def test_active(catalog):
    assert skus(Product.objects.active()) == ACTIVE_SKUS


def test_in_stock(catalog):
    assert skus(Product.objects.in_stock()) == ["BK-001", "BK-002", "GM-001", "GM-002", "GM-003", "MU-001", "MU-002"]


@pytest.mark.parametrize("slug, expected", [
    ("books", ["BK-001", "BK-002", "BK-003", "BK-004"]),
    ("games", ["GM-001", "GM-002", "GM-003"]),
    ("music", ["MU-001", "MU-002"]),
    ("garden", []),
])
def test_in_category(catalog, slug, expected):
    assert skus(Product.objects.in_category(slug)) == expected


@pytest.mark.parametrize("text, expected", [
    ("dune", ["BK-001"]),
    ("DUNE", ["BK-001"]),
    ("blue", ["MU-001", "MU-002"]),
    ("of", ["BK-003", "MU-001"]),
    ("gm-002", ["GM-002"]),
    ("GM", []),
    ("set", ["GM-001"]),
    ("zither", []),
])
def test_search(catalog, text, expected):
    assert skus(Product.objects.search(text)) == expected


@pytest.mark.parametrize("low, high, expected", [
    (None, None, sorted(PRODUCTS)),
    ("10", None, ["BK-003", "BK-004", "GM-001", "GM-002", "MU-001", "MU-002"]),
    (None, "9.99", ["BK-001", "BK-002", "GM-003"]),
    ("9.99", "14.99", ["BK-001", "BK-003", "MU-001"]),
    ("100", "1000", []),
    ("1234.50", "1234.50", ["MU-002"]),
])
def test_priced_between(catalog, low, high, expected):
    low = Decimal(low) if low else None
    high = Decimal(high) if high else None
    assert skus(Product.objects.priced_between(low, high)) == expected


def test_filters_compose(catalog):
    assert skus(Product.objects.in_stock().in_category("books").priced_between(high=Decimal("9"))) == ["BK-002"]


def test_units_sold_ignore_cancelled_orders(make_order):
    make_order(("BK-001", 2), ("GM-003", 1))
    make_order(("BK-001", 1), status=Status.PAID)
    make_order(("GM-003", 50), status=Status.CANCELLED)
    sold = dict(Product.objects.with_units_sold().values_list("sku", "units_sold"))
    assert sold["BK-001"] == 3
    assert sold["GM-003"] == 1
    assert sold["MU-001"] == 0


def test_best_sellers_order(make_order):
    make_order(("GM-003", 5), ("BK-001", 2))
    make_order(("MU-001", 3), ("BK-001", 1))
    assert [p.sku for p in Product.objects.best_sellers()] == ["GM-003", "BK-001", "MU-001"]


def test_best_sellers_ties_by_name(make_order):
    make_order(("BK-002", 1), ("BK-001", 1), ("GM-001", 1))
    assert [p.name for p in Product.objects.best_sellers()] == ["Chess Set", "Dune", "Neuromancer"]


def test_best_sellers_limit(make_order):
    make_order(*[(sku, 1) for sku in ACTIVE_SKUS])
    assert len(Product.objects.best_sellers(limit=3)) == 3


def test_no_sales_no_best_sellers(catalog):
    assert list(Product.objects.best_sellers()) == []


def test_orders_with_totals(make_order):
    first = make_order(("BK-001", 2), ("GM-003", 3))
    second = make_order(("MU-002", 1))
    empty = make_order()
    rows = {o.pk: (o.amount, o.item_count) for o in Order.objects.with_totals()}
    assert rows[first.pk] == (Decimal("29.58"), 5)
    assert rows[second.pk] == (Decimal("1234.50"), 1)
    assert rows[empty.pk] == (Decimal("0"), 0)


def test_open_orders(make_order):
    open_ones = {make_order(status=Status.PENDING).pk, make_order(status=Status.PAID).pk}
    make_order(status=Status.SHIPPED)
    make_order(status=Status.CANCELLED)
    assert set(Order.objects.open().values_list("pk", flat=True)) == open_ones


def test_revenue_ignores_cancelled_orders(make_order):
    make_order(("BK-001", 1), status=Status.PAID)
    make_order(("MU-002", 1), status=Status.SHIPPED)
    make_order(("GM-002", 3), status=Status.CANCELLED)
    assert Order.objects.revenue() == Decimal("1244.49")


def test_revenue_of_a_subset(make_order):
    make_order(("BK-001", 1), status=Status.PAID)
    make_order(("MU-002", 1), status=Status.SHIPPED)
    assert Order.objects.filter(status=Status.PAID).revenue() == Decimal("9.99")


def test_revenue_without_orders(catalog):
    assert Order.objects.revenue() == Decimal("0.00")


def test_count_by_status(make_order):
    for status in (Status.PENDING, Status.PENDING, Status.PAID, Status.CANCELLED):
        make_order(status=status)
    assert Order.objects.count_by_status() == {"pending": 2, "paid": 1, "cancelled": 1}


def test_newest_orders_first(make_order):
    numbers = [make_order().number for _ in range(3)]
    assert list(Order.objects.values_list("number", flat=True)) == numbers[::-1]


def test_select_related_fetches_categories_in_the_same_query(catalog, django_assert_num_queries):
    with django_assert_num_queries(1):
        names = {p.sku: p.category.name for p in Product.objects.select_related("category")}
    assert names["MU-001"] == "Music"


def test_without_select_related_each_category_is_a_query(catalog, django_assert_num_queries):
    with django_assert_num_queries(1 + 9):
        for product in Product.objects.all():
            product.category.name


def test_prefetch_lines_and_products(make_order, django_assert_num_queries):
    for _ in range(4):
        make_order(("BK-001", 1), ("GM-001", 2))
    with django_assert_num_queries(3):
        orders = list(Order.objects.prefetch_related("lines__product"))
        names = {line.product.name for order in orders for line in order.lines.all()}
        totals = [order.total for order in orders]
    assert names == {"Dune", "Chess Set"}
    assert totals == [Decimal("59.99")] * 4


def test_a_category_with_products_cannot_be_deleted(catalog):
    with pytest.raises(ProtectedError):
        catalog.categories["books"].delete()


def test_an_empty_category_can_be_deleted(catalog):
    catalog.categories["garden"].delete()
    assert Category.objects.count() == 3


def test_deleting_an_order_deletes_its_lines(make_order):
    order = make_order(("BK-001", 1), ("GM-001", 1))
    make_order(("MU-001", 1))
    order.delete()
    assert OrderLine.objects.count() == 1


def test_a_sold_product_cannot_be_deleted(make_order, catalog):
    make_order(("BK-001", 1))
    with pytest.raises(ProtectedError):
        catalog.products["BK-001"].delete()


def test_bulk_created_ids_are_consecutive(catalog):
    books = catalog.categories["books"]
    created = Product.objects.bulk_create(
        [Product(category=books, sku=f"NEW-{i}", name=f"New {i}", slug=f"new-{i}", price=1) for i in range(5)])
    ids = [p.id for p in created]
    assert ids == list(range(ids[0], ids[0] + 5))
