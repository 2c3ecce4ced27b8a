"""The catalog API through Django's test client: /api/products/, /api/categories/, /api/stats/."""

import pytest

from shop.models import Counter, Product
from tests.conftest import ACTIVE_SKUS, PRODUCTS

pytestmark = pytest.mark.django_db


def result_skus(body):
    return [p["sku"] for p in body["results"]]


def test_list_shows_active_products_by_name(api, catalog):
    status, body = api.get("/api/products/")
    assert status == 200
    assert body["count"] == 8
    assert body["pages"] == 1
    names = [p["name"] for p in body["results"]]
    assert names == sorted(names)
    assert sorted(result_skus(body)) == ACTIVE_SKUS


@pytest.mark.parametrize("ordering, first, last", [
    ("name", "MU-002", "BK-003"),
    ("-name", "BK-003", "MU-002"),
    ("price", "GM-003", "MU-002"),
    ("-price", "MU-002", "GM-003"),
    ("newest", "MU-002", "BK-001"),
])
def test_list_ordering(api, catalog, ordering, first, last):
    status, body = api.get(f"/api/products/?ordering={ordering}")
    assert status == 200
    assert result_skus(body)[0] == first
    assert result_skus(body)[-1] == last


def test_list_refuses_an_unknown_ordering(api, catalog):
    status, body = api.get("/api/products/?ordering=colour")
    assert status == 400
    assert body == {"error": "Unknown ordering: colour."}


@pytest.mark.parametrize("category, expected", [
    ("books", ["BK-001", "BK-002", "BK-003"]),
    ("games", ["GM-001", "GM-002", "GM-003"]),
    ("music", ["MU-001", "MU-002"]),
    ("garden", []),
    ("nothing-like-it", []),
])
def test_list_by_category(api, catalog, category, expected):
    status, body = api.get(f"/api/products/?category={category}")
    assert status == 200
    assert sorted(result_skus(body)) == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize("query, expected", [
    ("q=blue", ["MU-001", "MU-002"]),
    ("q=atlas", []),
    ("q=bk-002", ["BK-002"]),
    ("q=a&category=games", ["GM-002", "GM-003"]),
    ("in_stock=1&category=books", ["BK-001", "BK-002"]),
    ("in_stock=0&category=books", ["BK-001", "BK-002", "BK-003"]),
])
def test_list_search_and_stock(api, catalog, query, expected):
    status, body = api.get(f"/api/products/?{query}")
    assert status == 200
    assert sorted(result_skus(body)) == expected


@pytest.mark.parametrize("query, expected", [
    ("min_price=20", ["GM-001", "GM-002", "MU-002"]),
    ("max_price=9.99", ["BK-001", "BK-002", "GM-003"]),
    ("min_price=10&max_price=15", ["BK-003", "MU-001"]),
    ("min_price=0", ACTIVE_SKUS),
    ("min_price=5000", []),
])
def test_list_by_price(api, catalog, query, expected):
    status, body = api.get(f"/api/products/?{query}")
    assert status == 200
    assert sorted(result_skus(body)) == expected


@pytest.mark.parametrize("query, message", [
    ("min_price=cheap", "Not a number: min_price."),
    ("max_price=1,5", "Not a number: max_price."),
    ("min_price=", "Not a number: min_price."),
])
def test_list_refuses_a_bad_price(api, catalog, query, message):
    assert api.get(f"/api/products/?{query}") == (400, {"error": message})


@pytest.mark.parametrize("page_size, page, on_page, pages", [
    (3, 1, 3, 3),
    (3, 3, 2, 3),
    (4, 2, 4, 2),
    (8, 1, 8, 1),
    (100, 1, 8, 1),
    (1, 8, 1, 8),
])
def test_pagination(api, catalog, page_size, page, on_page, pages):
    status, body = api.get(f"/api/products/?page_size={page_size}&page={page}")
    assert status == 200
    assert len(body["results"]) == on_page
    assert body["pages"] == pages
    assert body["page"] == page
    assert body["count"] == 8


def test_pages_do_not_overlap(api, catalog):
    seen = []
    for page in (1, 2, 3):
        seen += result_skus(api.get(f"/api/products/?page_size=3&page={page}")[1])
    assert sorted(seen) == ACTIVE_SKUS


def test_a_page_past_the_end(api, catalog):
    assert api.get("/api/products/?page=3&page_size=4") == (404, {"error": "No such page."})


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=x", "page=1.5", "page_size=0", "page_size=many"])
def test_bad_page_numbers(api, catalog, query):
    assert api.get(f"/api/products/?{query}") == (400, {"error": "Page numbers are whole numbers."})


def test_page_size_is_capped(api, catalog):
    books = catalog.categories["books"]
    Product.objects.bulk_create(
        [Product(category=books, sku=f"PB-{i:03d}", name=f"Paperback {i:03d}", slug=f"pb-{i}", price=2, stock=1)
         for i in range(60)])
    status, body = api.get("/api/products/?page_size=500")
    assert status == 200
    assert len(body["results"]) == 50
    assert body["count"] == 68
    assert body["pages"] == 2


def test_product_fields(api, catalog):
    status, body = api.get("/api/products/?q=mu-002")
    assert status == 200
    assert body["results"] == [{
        "id": catalog.products["MU-002"].id,
        "sku": "MU-002",
        "name": "Blue Train, First Pressing",
        "slug": "blue-train-first-pressing",
        "category": "music",
        "price": "1234.50",
        "price_display": "€1,234.50",
        "stock": 1,
        "in_stock": True,
    }]


def test_out_of_stock_is_listed_as_such(api, catalog):
    body = api.get("/api/products/?q=bk-003")[1]
    assert body["results"][0]["in_stock"] is False


@pytest.mark.parametrize("sku", ACTIVE_SKUS)
def test_detail(api, catalog, sku):
    product = catalog.products[sku]
    status, body = api.get(f"/api/products/{product.id}/")
    assert status == 200
    name, price, stock, category, _ = PRODUCTS[sku]
    assert (body["sku"], body["name"], body["price"], body["stock"], body["category"]) == (
        sku, name, price, stock, category)


def test_detail_of_an_inactive_product(api, catalog):
    assert api.get(f"/api/products/{catalog.products['BK-004'].id}/") == (404, {"error": "Product not found."})


def test_detail_of_a_missing_product(api, catalog):
    missing = max(p.id for p in catalog.products.values()) + 1
    assert api.get(f"/api/products/{missing}/") == (404, {"error": "Product not found."})


def test_detail_counts_views(api, catalog):
    url = f"/api/products/{catalog.products['GM-001'].id}/"
    assert [api.get(url)[1]["views"] for _ in range(3)] == [1, 2, 3]
    assert Counter.value_of(f"views:product:{catalog.products['GM-001'].id}") == 3


def test_views_are_counted_per_product(api, catalog):
    for sku in ("BK-001", "BK-001", "GM-001"):
        api.get(f"/api/products/{catalog.products[sku].id}/")
    assert Counter.objects.count() == 2
    assert Counter.value_of(f"views:product:{catalog.products['BK-001'].id}") == 2


def test_categories(api, catalog):
    status, body = api.get("/api/categories/")
    assert status == 200
    assert body["results"] == [
        {"slug": "books", "name": "Books", "products": 3},
        {"slug": "games", "name": "Games", "products": 3},
        {"slug": "garden", "name": "Garden", "products": 0},
        {"slug": "music", "name": "Music", "products": 2},
    ]


def test_categories_when_there_are_none(api, db):
    assert api.get("/api/categories/") == (200, {"results": []})


def test_stats(api, make_order):
    make_order(("BK-001", 2), status="paid")
    make_order(("MU-002", 1), status="cancelled")
    assert api.get("/api/stats/") == (200, {"products": 9, "active_products": 8, "orders": 2, "revenue": "19.98"})


def test_best_sellers(api, make_order):
    make_order(("GM-003", 4), ("BK-001", 1))
    make_order(("BK-001", 2))
    status, body = api.get("/api/products/best-sellers/")
    assert status == 200
    assert body["results"] == [
        {"sku": "GM-003", "name": "Playing Cards", "units_sold": 4},
        {"sku": "BK-001", "name": "Dune", "units_sold": 3},
    ]


@pytest.mark.parametrize("method, url", [
    ("post", "/api/products/"),
    ("delete", "/api/products/1/"),
    ("put", "/api/categories/"),
    ("post", "/api/stats/"),
    ("get", "/api/orders/"),
    ("post", "/api/greeting/"),
])
def test_wrong_method(client, db, method, url):
    assert getattr(client, method)(url).status_code == 405
