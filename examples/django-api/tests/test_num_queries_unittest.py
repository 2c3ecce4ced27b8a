"""The same kind of checks written as Django TestCase classes with assertNumQueries, as older suites do."""

from decimal import Decimal

from django.core.cache import cache
from django.test import TestCase

from shop.models import Category, Counter, Order, OrderLine, Product


class CatalogTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.books = Category.objects.create(name="Books")
        cls.games = Category.objects.create(name="Games")
        cls.dune = Product.objects.create(category=cls.books, sku="BK-001", name="Dune", price=Decimal("9.99"),
                                          stock=4)
        cls.chess = Product.objects.create(category=cls.games, sku="GM-001", name="Chess Set",
                                           price=Decimal("25.00"), stock=2)

    def setUp(self):
        cache.clear()


class ProductQueryCountTests(CatalogTestCase):
    def test_list_then_cached_list(self):
        with self.assertNumQueries(2):
            self.assertEqual(self.client.get("/api/products/").json()["count"], 2)
        with self.assertNumQueries(0):
            self.client.get("/api/products/")

    def test_detail(self):
        with self.assertNumQueries(2):
            self.assertEqual(self.client.get(f"/api/products/{self.dune.id}/").json()["views"], 1)

    def test_categories(self):
        with self.assertNumQueries(1):
            self.client.get("/api/categories/")
        with self.assertNumQueries(0):
            self.client.get("/api/categories/")

    def test_save_invalidates(self):
        self.client.get("/api/categories/")
        self.chess.name = "Chess Set, Wooden"
        self.chess.save()
        with self.assertNumQueries(1):
            self.client.get("/api/categories/")

    def test_the_catalog_is_all_there_is(self):
        self.assertEqual(Product.objects.count(), 2)
        self.assertEqual(Category.objects.count(), 2)
        self.assertEqual(Counter.objects.count(), 0)


class OrderQueryCountTests(CatalogTestCase):
    def order(self, *lines):
        payload = {"email": "unit@example.com", "lines": [{"sku": s, "quantity": q} for s, q in lines]}
        return self.client.post("/api/orders/", payload, content_type="application/json")

    def test_first_order(self):
        with self.assertNumQueries(8 + 3 * 2):
            response = self.order(("BK-001", 1), ("GM-001", 1))
        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["number"], "ORD-000001")

    def test_stock_is_taken(self):
        self.order(("BK-001", 3))
        self.dune.refresh_from_db()
        self.assertEqual(self.dune.stock, 1)

    def test_stats_after_orders(self):
        self.order(("BK-001", 1))
        self.order(("GM-001", 2))
        with self.assertNumQueries(3):
            stats = self.client.get("/api/stats/").json()
        self.assertEqual(stats, {"products": 2, "active_products": 2, "orders": 2, "revenue": "59.99"})

    def test_order_rows(self):
        self.order(("BK-001", 1), ("GM-001", 1))
        self.assertEqual(Order.objects.count(), 1)
        self.assertEqual(OrderLine.objects.count(), 2)

    def test_detail(self):
        number = self.order(("BK-001", 1)).json()["number"]
        with self.assertNumQueries(3):
            self.assertEqual(self.client.get(f"/api/orders/{number}/").json()["total"], "9.99")

    def test_cancel(self):
        number = self.order(("GM-001", 2)).json()["number"]
        # As a status change (7), plus the lines and, per line, the restock and its read-back.
        with self.assertNumQueries(7 + 1 + 2):
            response = self.client.post(f"/api/orders/{number}/status/", {"status": "cancelled"},
                                        content_type="application/json")
        self.assertEqual(response.json()["status"], "cancelled")
        self.chess.refresh_from_db()
        self.assertEqual(self.chess.stock, 2)
