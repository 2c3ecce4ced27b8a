"""Query counts, as django_assert_num_queries checks them: how many queries each endpoint makes with an empty
cache and with a warm one. A count is exact only when this test alone fills and empties the cache."""

import pytest

from shop.models import Category, Product

pytestmark = pytest.mark.django_db


def test_categories_cold_then_warm(api, catalog, django_assert_num_queries):
    with django_assert_num_queries(1):
        api.get("/api/categories/")
    with django_assert_num_queries(0):
        api.get("/api/categories/")


@pytest.mark.parametrize("query", [
    "",
    "?category=books",
    "?q=blue",
    "?ordering=-price&page_size=3",
    "?min_price=5&max_price=50",
    "?in_stock=1&page=2&page_size=2",
])
def test_product_list_cold_then_warm(api, catalog, django_assert_num_queries, query):
    # A page costs two queries (the count for the paginator and the rows, categories joined in).
    with django_assert_num_queries(2):
        assert api.get(f"/api/products/{query}")[0] == 200
    with django_assert_num_queries(0):
        assert api.get(f"/api/products/{query}")[0] == 200


def test_every_query_string_is_cached_on_its_own(api, catalog, django_assert_num_queries):
    api.get("/api/products/?page=1&page_size=4")
    with django_assert_num_queries(2):
        api.get("/api/products/?page=2&page_size=4")


def test_each_language_is_cached_on_its_own(api, catalog, django_assert_num_queries):
    api.get("/api/products/", language="fr")
    with django_assert_num_queries(2):
        api.get("/api/products/", language="de")
    with django_assert_num_queries(0):
        api.get("/api/products/", language="fr")


def test_an_error_page_is_not_cached(api, catalog, django_assert_num_queries):
    api.get("/api/products/?page=9")
    # The count alone shows the page does not exist; nothing was cached, so it is made again.
    with django_assert_num_queries(1):
        assert api.get("/api/products/?page=9")[0] == 404


def test_a_product_change_empties_the_list_cache(api, catalog, django_assert_num_queries):
    api.get("/api/products/")
    product = catalog.products["BK-001"]
    product.price = 11
    product.save()
    with django_assert_num_queries(2):
        body = api.get("/api/products/")[1]
    assert [p["price"] for p in body["results"] if p["sku"] == "BK-001"] == ["11.00"]


def test_a_category_change_empties_the_category_cache(api, catalog, django_assert_num_queries):
    api.get("/api/categories/")
    Category.objects.create(name="Toys")
    with django_assert_num_queries(1):
        assert len(api.get("/api/categories/")[1]["results"]) == 5


def test_product_detail_is_never_cached(api, catalog, django_assert_num_queries):
    url = f"/api/products/{catalog.products['GM-001'].id}/"
    for _ in range(3):
        # The product, then the view counter's upsert.
        with django_assert_num_queries(2):
            api.get(url)


def test_stats_cold_then_warm(api, make_order, django_assert_num_queries):
    make_order(("BK-001", 1))
    with django_assert_num_queries(3):
        api.get("/api/stats/")
    with django_assert_num_queries(0):
        api.get("/api/stats/")


def test_a_new_order_empties_the_stats_cache(api, catalog, django_assert_num_queries):
    api.get("/api/stats/")
    api.order(("GM-003", 1))
    with django_assert_num_queries(3):
        assert api.get("/api/stats/")[1]["orders"] == 1


@pytest.mark.parametrize("lines", [1, 2, 3, 4])
def test_creating_an_order(api, catalog, django_assert_num_queries, lines):
    skus = ["BK-001", "GM-001", "GM-003", "MU-001"][:lines]
    # Products, savepoint, the highest order number (Redis has no counter yet), the order, three per line
    # (take the stock, read it back, the line), release, then the order read back with its lines and products.
    with django_assert_num_queries(8 + 3 * lines):
        assert api.order(*[(sku, 1) for sku in skus])[0] == 201


def test_the_second_order_finds_its_number_in_redis(api, catalog, django_assert_num_queries):
    api.order(("BK-001", 1))
    with django_assert_num_queries(7 + 3):
        assert api.order(("BK-001", 1))[1]["number"] == "ORD-000002"


def test_an_invalid_order_costs_no_query(api, catalog, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api.post("/api/orders/", {"email": "x"})[0] == 400


def test_a_rate_limited_order_costs_no_query(api, catalog, settings, django_assert_num_queries):
    settings.ORDER_RATE_LIMIT = 0
    with django_assert_num_queries(0):
        assert api.order(("BK-001", 1))[0] == 429


@pytest.mark.parametrize("lines", [1, 3])
def test_order_detail(api, catalog, django_assert_num_queries, lines):
    number = api.order(*[(sku, 1) for sku in ["BK-001", "GM-001", "GM-003"][:lines]])[1]["number"]
    with django_assert_num_queries(3):
        assert len(api.get(f"/api/orders/{number}/")[1]["lines"]) == lines


def test_order_status(api, catalog, django_assert_num_queries):
    number = api.order(("BK-001", 1))[1]["number"]
    # The order, savepoint, the update, release, then the order read back with its lines and products.
    with django_assert_num_queries(7):
        assert api.post(f"/api/orders/{number}/status/", {"status": "paid"})[0] == 200


def test_sales_report_is_cached_for_a_minute(api, make_order, django_assert_num_queries):
    make_order(("BK-001", 2), ("GM-001", 1))
    with django_assert_num_queries(1):
        first = api.get("/api/reports/sales/")[1]
    make_order(("BK-001", 5))
    with django_assert_num_queries(0):
        assert api.get("/api/reports/sales/")[1] == first


def test_best_sellers_is_one_query(api, make_order, django_assert_num_queries):
    make_order(("BK-001", 2), ("GM-001", 1), ("MU-001", 4))
    with django_assert_num_queries(1):
        assert len(api.get("/api/products/best-sellers/")[1]["results"]) == 3


def test_greeting_makes_no_query(api, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        api.get("/api/greeting/")


def test_update_without_save_bypasses_the_invalidation(api, catalog, django_assert_num_queries):
    before = api.get("/api/products/?q=dune")[1]
    Product.objects.filter(sku="BK-001").update(price=99)
    with django_assert_num_queries(0):
        assert api.get("/api/products/?q=dune")[1] == before
