"""The shop's data: categories, products with stock, orders with lines, and a table of counters."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import connection, models, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _


class OutOfStock(Exception):
    def __init__(self, product, available):
        super().__init__(f"only {available} of {product.sku} left")
        self.product = product
        self.available = available


class InvalidTransition(Exception):
    def __init__(self, old, new):
        super().__init__(f"cannot go from {old} to {new}")
        self.old = old
        self.new = new


class Category(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = slugify(self.name)
        super().save(*args, **kwargs)


class ProductQuerySet(models.QuerySet):
    def active(self):
        return self.filter(active=True)

    def in_stock(self):
        return self.active().filter(stock__gt=0)

    def in_category(self, slug):
        return self.filter(category__slug=slug)

    def search(self, text):
        return self.filter(Q(name__icontains=text) | Q(sku__iexact=text))

    def priced_between(self, low=None, high=None):
        queryset = self
        if low is not None:
            queryset = queryset.filter(price__gte=low)
        if high is not None:
            queryset = queryset.filter(price__lte=high)
        return queryset

    def with_units_sold(self):
        sold = Sum("orderline__quantity", filter=~Q(orderline__order__status="cancelled"))
        return self.annotate(units_sold=Coalesce(sold, 0))

    def best_sellers(self, limit=5):
        return self.with_units_sold().filter(units_sold__gt=0).order_by("-units_sold", "name")[:limit]


class Product(models.Model):
    category = models.ForeignKey(Category, related_name="products", on_delete=models.PROTECT)
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    stock = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.CheckConstraint(check=Q(price__gte=0), name="product_price_not_negative")]

    def __str__(self):
        return f"{self.name} ({self.sku})"

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = slugify(self.name)
        super().save(*args, **kwargs)

    def reserve(self, quantity):
        """Takes `quantity` units out of stock in one UPDATE, so two buyers cannot both take the last one."""
        taken = Product.objects.filter(pk=self.pk, stock__gte=quantity).update(stock=F("stock") - quantity)
        if not taken:
            self.refresh_from_db(fields=["stock"])
            raise OutOfStock(self, self.stock)
        self.refresh_from_db(fields=["stock"])

    def restock(self, quantity):
        Product.objects.filter(pk=self.pk).update(stock=F("stock") + quantity)
        self.refresh_from_db(fields=["stock"])


class OrderQuerySet(models.QuerySet):
    def with_totals(self):
        line_total = ExpressionWrapper(
            F("lines__quantity") * F("lines__unit_price"), output_field=DecimalField(max_digits=12, decimal_places=2)
        )
        return self.annotate(
            amount=Coalesce(Sum(line_total), Decimal("0"), output_field=DecimalField(max_digits=12, decimal_places=2)),
            item_count=Coalesce(Sum("lines__quantity"), 0),
        )

    def open(self):
        return self.filter(status__in=[Order.Status.PENDING, Order.Status.PAID])

    def revenue(self):
        """Sum of every line of every order that was not cancelled."""
        result = OrderLine.objects.filter(order__in=self).exclude(order__status=Order.Status.CANCELLED).aggregate(
            revenue=Sum(F("quantity") * F("unit_price"), output_field=DecimalField(max_digits=12, decimal_places=2))
        )
        return result["revenue"] or Decimal("0.00")

    def count_by_status(self):
        return dict(self.values_list("status").annotate(n=Count("id")).order_by())


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PAID = "paid", _("Paid")
        SHIPPED = "shipped", _("Shipped")
        CANCELLED = "cancelled", _("Cancelled")

    # Which status may follow which; anything else is refused.
    TRANSITIONS = {
        Status.PENDING: {Status.PAID, Status.CANCELLED},
        Status.PAID: {Status.SHIPPED, Status.CANCELLED},
        Status.SHIPPED: set(),
        Status.CANCELLED: set(),
    }

    number = models.CharField(max_length=20, unique=True)
    email = models.EmailField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created = models.DateTimeField(auto_now_add=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.number

    @property
    def total(self):
        return sum((line.subtotal for line in self.lines.all()), Decimal("0.00"))

    def can_become(self, status):
        return status in self.TRANSITIONS[self.status]

    def transition(self, status):
        if not self.can_become(status):
            raise InvalidTransition(self.status, status)
        with transaction.atomic():
            if status == self.Status.CANCELLED:
                for line in self.lines.select_related("product"):
                    line.product.restock(line.quantity)
            self.status = status
            self.save(update_fields=["status"])


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(check=Q(quantity__gte=1), name="order_line_quantity_positive")]

    @property
    def subtotal(self):
        return self.quantity * self.unit_price


class Counter(models.Model):
    """Named counters kept by the database (page views): one atomic upsert per increment, whatever the
    number of web processes."""

    name = models.CharField(max_length=100, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}={self.value}"

    @classmethod
    def increment(cls, name, by=1):
        table = connection.ops.quote_name(cls._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, value) VALUES (%s, %s) "
                f"ON CONFLICT (name) DO UPDATE SET value = {table}.value + EXCLUDED.value RETURNING value",
                [name, by],
            )
            return cursor.fetchone()[0]

    @classmethod
    def value_of(cls, name):
        return cls.objects.filter(name=name).values_list("value", flat=True).first() or 0
