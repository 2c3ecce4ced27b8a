"""The JSON API. Read-mostly answers are cached in Redis through Django's cache (shop.cache.RedisCache):
the category list and the statistics under fixed keys, product lists under keys made of the catalog's
version, the language and the query, the sales report by cache_page."""

import hashlib
import json
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, Paginator
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, Q
from django.http import JsonResponse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_GET, require_POST

from shop import services
from shop.formatting import format_item_count, format_price
from shop.models import Category, Counter, InvalidTransition, Order, OrderLine, OutOfStock, Product
from shop.signals import CATEGORIES_KEY, STATS_KEY, products_version

ORDERINGS = {"name": ("name", "id"), "-name": ("-name", "-id"), "price": ("price", "id"),
             "-price": ("-price", "-id"), "newest": ("-created", "-id")}
MAX_PAGE_SIZE = 50


def error(message, status):
    return JsonResponse({"error": message}, status=status)


def product_json(product):
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "slug": product.slug,
        "category": product.category.slug,
        "price": str(product.price),
        "price_display": format_price(product.price),
        "stock": product.stock,
        "in_stock": product.stock > 0,
    }


def order_json(order):
    lines = list(order.lines.all())
    items = sum(line.quantity for line in lines)
    return {
        "number": order.number,
        "email": order.email,
        "status": order.status,
        "status_display": order.get_status_display(),
        "items": items,
        "items_display": format_item_count(items),
        "total": str(order.total),
        "total_display": format_price(order.total),
        "lines": [
            {"sku": line.product.sku, "quantity": line.quantity, "unit_price": str(line.unit_price),
             "subtotal": str(line.subtotal)}
            for line in lines
        ],
    }


@require_GET
def greeting(request):
    return JsonResponse({"message": _("Welcome to our shop!"), "language": get_language()})


@require_GET
def categories(request):
    def build():
        # Meta.ordering does not apply to aggregating queries (Django 3.1 and later): order explicitly.
        rows = Category.objects.annotate(
            products_count=Count("products", filter=Q(products__active=True))).order_by("name")
        return [{"slug": c.slug, "name": c.name, "products": c.products_count} for c in rows]

    return JsonResponse({"results": cache.get_or_set(CATEGORIES_KEY, build, timeout=300)})


def price_parameter(params, name):
    if name not in params:
        return None
    try:
        return Decimal(params[name])
    except InvalidOperation:
        raise ValueError(_("Not a number: %(name)s.") % {"name": name}) from None


@require_GET
def product_list(request):
    params = request.GET
    ordering = params.get("ordering", "name")
    if ordering not in ORDERINGS:
        return error(_("Unknown ordering: %(ordering)s.") % {"ordering": ordering}, 400)
    try:
        low = price_parameter(params, "min_price")
        high = price_parameter(params, "max_price")
    except ValueError as exc:
        return error(str(exc), 400)
    try:
        page_number = int(params.get("page", "1"))
        page_size = min(int(params.get("page_size", "20")), MAX_PAGE_SIZE)
    except ValueError:
        page_number = page_size = 0
    if page_number < 1 or page_size < 1:
        return error(_("Page numbers are whole numbers."), 400)

    query = request.GET.urlencode()
    key = f"catalog:products:v{products_version()}:{get_language()}:{hashlib.md5(query.encode()).hexdigest()}"
    cached = cache.get(key)
    if cached is not None:
        return JsonResponse(cached)

    products = Product.objects.active().select_related("category").priced_between(low, high)
    if "category" in params:
        products = products.in_category(params["category"])
    if params.get("q"):
        products = products.search(params["q"])
    if params.get("in_stock") == "1":
        products = products.filter(stock__gt=0)
    paginator = Paginator(products.order_by(*ORDERINGS[ordering]), page_size)
    try:
        page = paginator.page(page_number)
    except EmptyPage:
        return error(_("No such page."), 404)
    body = {"count": paginator.count, "page": page.number, "pages": paginator.num_pages,
            "results": [product_json(p) for p in page.object_list]}
    cache.set(key, body, timeout=120)
    return JsonResponse(body)


@require_GET
def product_detail(request, pk):
    product = Product.objects.select_related("category").filter(pk=pk, active=True).first()
    if product is None:
        return error(_("Product not found."), 404)
    body = product_json(product)
    body["views"] = Counter.increment(f"views:product:{product.pk}")
    return JsonResponse(body)


@require_GET
def best_sellers(request):
    rows = Product.objects.best_sellers(limit=5)
    return JsonResponse({"results": [{"sku": p.sku, "name": p.name, "units_sold": p.units_sold} for p in rows]})


@require_GET
def stats(request):
    def build():
        products = Product.objects.aggregate(total=Count("id"), active=Count("id", filter=Q(active=True)))
        orders = Order.objects.all()
        return {"products": products["total"], "active_products": products["active"],
                "orders": orders.count(), "revenue": str(orders.revenue())}

    return JsonResponse(cache.get_or_set(STATS_KEY, build, timeout=60))


def validate_order(payload):
    """Returns (email, [(product, quantity)]) or raises ValidationError with a dict of translated messages."""
    errors = {}
    email = payload.get("email")
    if not email:
        errors["email"] = _("This field is required.")
    else:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = _("Enter a valid email address.")
    lines = payload.get("lines")
    if not isinstance(lines, list) or not lines:
        errors["lines"] = _("An order needs at least one line.")
        raise ValidationError(errors)
    wanted = {}
    for line in lines:
        quantity = line.get("quantity") if isinstance(line, dict) else None
        sku = line.get("sku") if isinstance(line, dict) else None
        if not isinstance(sku, str) or not sku:
            errors["lines"] = _("Every line needs a product SKU.")
        elif type(quantity) is not int or quantity < 1:
            errors["lines"] = _("Quantity must be a positive whole number.")
        else:
            wanted[sku] = wanted.get(sku, 0) + quantity
    if errors:
        raise ValidationError(errors)
    products = Product.objects.active().in_bulk(list(wanted), field_name="sku")
    unknown = sorted(set(wanted) - set(products))
    if unknown:
        raise ValidationError({"lines": _("Unknown product: %(sku)s.") % {"sku": ", ".join(unknown)}})
    return email, [(products[sku], quantity) for sku, quantity in wanted.items()]


def parse_json(request):
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


@require_POST
def create_order(request):
    allowed, retry_after = services.rate_limit(
        "orders", request.META.get("REMOTE_ADDR", "unknown"), settings.ORDER_RATE_LIMIT, settings.ORDER_RATE_WINDOW
    )
    if not allowed:
        response = error(_("Too many orders: try again in %(seconds)d seconds.") % {"seconds": retry_after}, 429)
        response["Retry-After"] = str(retry_after)
        return response
    payload = parse_json(request)
    if payload is None:
        return error(_("Invalid JSON body."), 400)
    try:
        email, wanted = validate_order(payload)
    except ValidationError as exc:
        return JsonResponse({"errors": exc.message_dict}, status=400)
    try:
        with transaction.atomic():
            order = Order.objects.create(number=services.next_order_number(), email=email)
            for product, quantity in wanted:
                product.reserve(quantity)
                OrderLine.objects.create(order=order, product=product, quantity=quantity, unit_price=product.price)
    except OutOfStock as exc:
        message = _("Only %(stock)d left of %(name)s.") % {"stock": exc.available, "name": exc.product.name}
        return JsonResponse({"errors": {"lines": [message]}}, status=409)
    cache.delete(STATS_KEY)
    order = Order.objects.prefetch_related("lines__product").get(pk=order.pk)
    return JsonResponse(order_json(order), status=201)


@require_GET
def order_detail(request, number):
    order = Order.objects.prefetch_related("lines__product").filter(number=number).first()
    if order is None:
        return error(_("Order not found."), 404)
    return JsonResponse(order_json(order))


@require_POST
def order_status(request, number):
    payload = parse_json(request)
    if payload is None:
        return error(_("Invalid JSON body."), 400)
    order = Order.objects.filter(number=number).first()
    if order is None:
        return error(_("Order not found."), 404)
    status = payload.get("status")
    if status not in Order.Status.values:
        return error(_("Unknown status: %(status)s.") % {"status": status}, 400)
    try:
        order.transition(status)
    except InvalidTransition as exc:
        message = _("Cannot change an order from %(old)s to %(new)s.") % {
            "old": Order.Status(exc.old).label, "new": Order.Status(exc.new).label}
        return error(message, 409)
    cache.delete(STATS_KEY)
    order = Order.objects.prefetch_related("lines__product").get(pk=order.pk)
    return JsonResponse(order_json(order))


@require_GET
@cache_page(60)
def sales_report(request):
    """Units and revenue per category: the finance team's dashboard polls it, a minute old is fine."""
    rows = {}
    lines = OrderLine.objects.exclude(order__status=Order.Status.CANCELLED).select_related("product__category")
    for line in lines:
        row = rows.setdefault(line.product.category.slug, {"units": 0, "revenue": Decimal("0.00")})
        row["units"] += line.quantity
        row["revenue"] += line.subtotal
    return JsonResponse({"categories": {slug: {"units": r["units"], "revenue": str(r["revenue"])}
                                        for slug, r in sorted(rows.items())}})


@require_POST
def site_language(request):
    payload = parse_json(request)
    if payload is None:
        return error(_("Invalid JSON body."), 400)
    try:
        services.set_site_language(payload.get("language"))
    except ValueError:
        return error(_("Unknown language: %(language)s.") % {"language": payload.get("language")}, 400)
    return JsonResponse({"language": services.site_language()})
