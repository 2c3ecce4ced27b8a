"""Cache invalidation: the catalog's cached answers are dropped whenever a category or a product changes."""

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from shop.models import Category, Product

CATEGORIES_KEY = "catalog:categories"
PRODUCTS_VERSION_KEY = "catalog:products-version"
STATS_KEY = "shop:stats"


def products_version():
    return cache.get_or_set(PRODUCTS_VERSION_KEY, 1, timeout=None)


def invalidate_catalog():
    cache.delete_many([CATEGORIES_KEY, STATS_KEY])
    # Every cached product list names the version it was made from: a new version orphans them all at once
    # (they expire on their own), without looking for their keys. No version yet: no list was cached.
    try:
        cache.incr(PRODUCTS_VERSION_KEY)
    except ValueError:
        pass


@receiver(post_save, sender=Product)
@receiver(post_delete, sender=Product)
@receiver(post_save, sender=Category)
@receiver(post_delete, sender=Category)
def catalog_changed(sender, **kwargs):
    invalidate_catalog()
