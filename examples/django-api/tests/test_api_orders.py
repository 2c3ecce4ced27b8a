"""Orders through the API: validation, stock, order numbers from Redis, status changes, the rate limit."""

import pytest

from shop.models import Order, OrderLine, Product
from shop.services import ORDER_NUMBER_KEY

pytestmark = pytest.mark.django_db


def test_create_an_order(api, catalog):
    status, body = api.order(("BK-001", 2), ("GM-003", 1))
    assert status == 201
    assert body == {
        "number": "ORD-000001",
        "email": "buyer@example.com",
        "status": "pending",
        "status_display": "Pending",
        "items": 3,
        "items_display": "3 items",
        "total": "23.18",
        "total_display": "€23.18",
        "lines": [
            {"sku": "BK-001", "quantity": 2, "unit_price": "9.99", "subtotal": "19.98"},
            {"sku": "GM-003", "quantity": 1, "unit_price": "3.20", "subtotal": "3.20"},
        ],
    }


def test_an_order_takes_stock(api, catalog):
    api.order(("BK-001", 2), ("GM-002", 1))
    stock = dict(Product.objects.values_list("sku", "stock"))
    assert stock["BK-001"] == 8
    assert stock["GM-002"] == 0


def test_an_order_is_stored(api, catalog):
    api.order(("BK-001", 2), email="someone@example.org")
    order = Order.objects.get()
    assert (order.number, order.email, order.status) == ("ORD-000001", "someone@example.org", "pending")
    assert OrderLine.objects.count() == 1


def test_order_numbers_follow_each_other(api, catalog):
    numbers = [api.order(("GM-003", 1))[1]["number"] for _ in range(3)]
    assert numbers == ["ORD-000001", "ORD-000002", "ORD-000003"]


def test_the_order_number_counter_lives_in_redis(api, catalog, redis_client):
    api.order(("GM-003", 1))
    api.order(("GM-003", 1))
    assert redis_client.get(ORDER_NUMBER_KEY) == b"2"


def test_order_numbers_resume_from_the_database(api, make_order, redis_client):
    Order.objects.create(number="ORD-000041", email="old@example.com")
    assert api.order(("GM-003", 1))[1]["number"] == "ORD-000042"
    assert redis_client.get(ORDER_NUMBER_KEY) == b"42"


def test_repeated_skus_make_one_line(api, catalog):
    status, body = api.order(("BK-001", 1), ("BK-001", 2))
    assert status == 201
    assert body["lines"] == [{"sku": "BK-001", "quantity": 3, "unit_price": "9.99", "subtotal": "29.97"}]


def test_one_item(api, catalog):
    assert api.order(("MU-002", 1))[1]["items_display"] == "1 item"


@pytest.mark.parametrize("payload, field, message", [
    ({"lines": [{"sku": "BK-001", "quantity": 1}]}, "email", "This field is required."),
    ({"email": "", "lines": [{"sku": "BK-001", "quantity": 1}]}, "email", "This field is required."),
    ({"email": "not-an-address", "lines": [{"sku": "BK-001", "quantity": 1}]}, "email",
     "Enter a valid email address."),
    ({"email": "a@b", "lines": [{"sku": "BK-001", "quantity": 1}]}, "email", "Enter a valid email address."),
    ({"email": "a@example.com"}, "lines", "An order needs at least one line."),
    ({"email": "a@example.com", "lines": []}, "lines", "An order needs at least one line."),
    ({"email": "a@example.com", "lines": "BK-001"}, "lines", "An order needs at least one line."),
    ({"email": "a@example.com", "lines": [{"quantity": 1}]}, "lines", "Every line needs a product SKU."),
    ({"email": "a@example.com", "lines": [{"sku": "", "quantity": 1}]}, "lines", "Every line needs a product SKU."),
    ({"email": "a@example.com", "lines": [{"sku": 7, "quantity": 1}]}, "lines", "Every line needs a product SKU."),
    ({"email": "a@example.com", "lines": ["BK-001"]}, "lines", "Every line needs a product SKU."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-001"}]}, "lines", "Quantity must be a positive whole number."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-001", "quantity": 0}]}, "lines",
     "Quantity must be a positive whole number."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-001", "quantity": -2}]}, "lines",
     "Quantity must be a positive whole number."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-001", "quantity": 1.5}]}, "lines",
     "Quantity must be a positive whole number."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-001", "quantity": "2"}]}, "lines",
     "Quantity must be a positive whole number."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-001", "quantity": True}]}, "lines",
     "Quantity must be a positive whole number."),
    ({"email": "a@example.com", "lines": [{"sku": "XX-999", "quantity": 1}]}, "lines", "Unknown product: XX-999."),
    ({"email": "a@example.com", "lines": [{"sku": "ZZ-1", "quantity": 1}, {"sku": "AA-1", "quantity": 1}]},
     "lines", "Unknown product: AA-1, ZZ-1."),
    ({"email": "a@example.com", "lines": [{"sku": "BK-004", "quantity": 1}]}, "lines", "Unknown product: BK-004."),
])
def test_invalid_orders(api, catalog, payload, field, message):
    status, body = api.post("/api/orders/", payload)
    assert status == 400
    assert body["errors"][field] == [message]
    assert Order.objects.count() == 0


def test_every_invalid_field_is_reported(api, catalog):
    status, body = api.post("/api/orders/", {"email": "nope", "lines": [{"sku": "BK-001", "quantity": 0}]})
    assert status == 400
    assert body["errors"] == {"email": ["Enter a valid email address."],
                              "lines": ["Quantity must be a positive whole number."]}


@pytest.mark.parametrize("raw", ["", "{", "[]", "42", '"order"', "null", "\xff"])
def test_bodies_that_are_not_a_json_object(api, catalog, raw):
    assert api.post("/api/orders/", None, raw=raw) == (400, {"error": "Invalid JSON body."})


def test_not_enough_stock(api, catalog):
    status, body = api.order(("BK-001", 1), ("GM-002", 2))
    assert status == 409
    assert body == {"errors": {"lines": ["Only 1 left of Go Board."]}}


def test_a_refused_order_changes_nothing(api, catalog, redis_client):
    api.order(("BK-001", 1), ("GM-002", 2))
    assert Order.objects.count() == 0
    assert OrderLine.objects.count() == 0
    assert Product.objects.get(sku="BK-001").stock == 10
    # The number was drawn before the stock ran out: numbers may have gaps, never duplicates.
    assert api.order(("BK-001", 1))[1]["number"] == "ORD-000002"


def test_out_of_stock_product(api, catalog):
    assert api.order(("BK-003", 1)) == (409, {"errors": {"lines": ["Only 0 left of The Left Hand of Darkness."]}})


def test_order_detail(api, catalog):
    number = api.order(("MU-001", 2))[1]["number"]
    status, body = api.get(f"/api/orders/{number}/")
    assert status == 200
    assert (body["number"], body["total"], body["items"]) == (number, "29.98", 2)


def test_order_detail_of_a_missing_order(api, db):
    assert api.get("/api/orders/ORD-123456/") == (404, {"error": "Order not found."})


@pytest.mark.parametrize("path, final", [
    (["paid"], "paid"),
    (["cancelled"], "cancelled"),
    (["paid", "shipped"], "shipped"),
    (["paid", "cancelled"], "cancelled"),
])
def test_status_changes(api, catalog, path, final):
    number = api.order(("GM-001", 1))[1]["number"]
    for status_name in path:
        status, body = api.post(f"/api/orders/{number}/status/", {"status": status_name})
        assert status == 200
    assert body["status"] == final
    assert Order.objects.get(number=number).status == final


@pytest.mark.parametrize("path, refused, message", [
    (["shipped"], "shipped", "Cannot change an order from Pending to Shipped."),
    (["paid", "shipped"], "paid", "Cannot change an order from Shipped to Paid."),
    (["cancelled"], "paid", "Cannot change an order from Cancelled to Paid."),
    (["paid", "shipped"], "cancelled", "Cannot change an order from Shipped to Cancelled."),
    ([], "pending", "Cannot change an order from Pending to Pending."),
])
def test_refused_status_changes(api, catalog, path, refused, message):
    number = api.order(("GM-001", 1))[1]["number"]
    for status_name in path:
        api.post(f"/api/orders/{number}/status/", {"status": status_name})
    assert api.post(f"/api/orders/{number}/status/", {"status": refused}) == (409, {"error": message})


@pytest.mark.parametrize("payload", [{"status": "lost"}, {"status": None}, {}])
def test_unknown_status(api, catalog, payload):
    number = api.order(("GM-001", 1))[1]["number"]
    status, body = api.post(f"/api/orders/{number}/status/", payload)
    assert status == 400
    assert body["error"].startswith("Unknown status: ")


def test_status_of_a_missing_order(api, db):
    assert api.post("/api/orders/ORD-000999/status/", {"status": "paid"}) == (404, {"error": "Order not found."})


def test_status_with_a_bad_body(api, catalog):
    number = api.order(("GM-001", 1))[1]["number"]
    assert api.post(f"/api/orders/{number}/status/", None, raw="paid") == (400, {"error": "Invalid JSON body."})


def test_cancelling_restocks(api, catalog):
    number = api.order(("GM-003", 40))[1]["number"]
    assert Product.objects.get(sku="GM-003").stock == 60
    api.post(f"/api/orders/{number}/status/", {"status": "cancelled"})
    assert Product.objects.get(sku="GM-003").stock == 100


def test_five_orders_a_minute_then_429(api, catalog):
    for expected in range(1, 6):
        status, body = api.order(("GM-003", 1))
        assert status == 201, body
        assert body["number"] == f"ORD-{expected:06d}"
    response = api.client.post("/api/orders/", data="{}", content_type="application/json")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"] == f"Too many orders: try again in {response['Retry-After']} seconds."
    assert Order.objects.count() == 5


def test_invalid_orders_count_against_the_limit(api, catalog):
    for _ in range(5):
        assert api.post("/api/orders/", {})[0] == 400
    assert api.order(("GM-003", 1))[0] == 429


def test_the_limit_is_per_client_address(api, catalog):
    for _ in range(5):
        api.order(("GM-003", 1))
    assert api.order(("GM-003", 1), REMOTE_ADDR="10.0.0.2")[0] == 201
    assert api.order(("GM-003", 1))[0] == 429


def test_the_limit_is_a_setting(api, catalog, settings):
    settings.ORDER_RATE_LIMIT = 2
    assert [api.order(("GM-003", 1))[0] for _ in range(3)] == [201, 201, 429]
