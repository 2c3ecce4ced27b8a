"""Prices as each language writes them: digits grouped and separated by Django's locale formats, the
currency placed by the translation catalog ("€1,234.50", "1 234,50 €", "1.234,50 €")."""

from decimal import Decimal

from django.utils import formats
from django.utils.translation import gettext, ngettext


def format_price(amount):
    amount = Decimal(amount).quantize(Decimal("0.01"))
    digits = formats.number_format(amount, decimal_pos=2, use_l10n=True, force_grouping=True)
    # Translators: the price with its currency sign; keep %(amount)s.
    return gettext("€%(amount)s") % {"amount": digits}


def format_item_count(count):
    return ngettext("%(count)d item", "%(count)d items", count) % {"count": count}
