"""Translations: the API answers in English, French or German, chosen by Accept-Language, else by the site's
default language kept in Redis; the catalogs are compiled from shop/locale/*/LC_MESSAGES/django.po."""

import gettext as gnu_gettext
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import translation

from shop.formatting import format_item_count, format_price
from shop.services import SITE_LANGUAGE_KEY, set_site_language, site_language

pytestmark = pytest.mark.django_db

LOCALE = Path(__file__).resolve().parent.parent / "shop" / "locale"
WELCOME = {"en": "Welcome to our shop!", "fr": "Bienvenue dans notre boutique !", "de": "Willkommen in unserem Shop!"}


@pytest.mark.parametrize("header, language", [
    ("en", "en"), ("fr", "fr"), ("de", "de"), ("fr-FR,fr;q=0.9", "fr"), ("de-CH", "de"), ("en-GB", "en"),
    ("es", "en"), ("es,de;q=0.5", "de"), ("fr;q=0.2,de;q=0.8", "de"),
])
def test_greeting(api, header, language):
    assert api.get("/api/greeting/", language=header) == (200, {"message": WELCOME[language], "language": language})


@pytest.mark.parametrize("language", ["en", "fr", "de"])
def test_content_language(client, language):
    response = client.get("/api/greeting/", HTTP_ACCEPT_LANGUAGE=language)
    assert response["Content-Language"] == language
    assert "Accept-Language" in response["Vary"]


def test_the_language_cookie(client):
    client.cookies["django_language"] = "de"
    assert client.get("/api/greeting/").json()["language"] == "de"


@pytest.mark.parametrize("language, message", [
    ("en", "Product not found."), ("fr", "Produit introuvable."), ("de", "Produkt nicht gefunden."),
])
def test_product_not_found(api, catalog, language, message):
    assert api.get("/api/products/999999/", language=language) == (404, {"error": message})


@pytest.mark.parametrize("language, message", [
    ("en", "Order not found."), ("fr", "Commande introuvable."), ("de", "Bestellung nicht gefunden."),
])
def test_order_not_found(api, db, language, message):
    assert api.get("/api/orders/ORD-1/", language=language) == (404, {"error": message})


@pytest.mark.parametrize("language, message", [
    ("en", "Invalid JSON body."), ("fr", "Corps JSON invalide."), ("de", "Ungültiger JSON-Inhalt."),
])
def test_invalid_json(api, db, language, message):
    assert api.post("/api/orders/", None, raw="{", language=language) == (400, {"error": message})


@pytest.mark.parametrize("language, errors", [
    ("en", {"email": ["Enter a valid email address."], "lines": ["An order needs at least one line."]}),
    ("fr", {"email": ["Saisissez une adresse e-mail valide."],
            "lines": ["Une commande doit avoir au moins une ligne."]}),
    ("de", {"email": ["Bitte eine gültige E-Mail-Adresse eingeben."],
            "lines": ["Eine Bestellung braucht mindestens eine Position."]}),
])
def test_validation_errors(api, db, language, errors):
    assert api.post("/api/orders/", {"email": "nope"}, language=language) == (400, {"errors": errors})


@pytest.mark.parametrize("language, message", [
    ("en", "Only 1 left of Go Board."),
    ("fr", "Il ne reste que 1 Go Board."),
    ("de", "Nur noch 1 × Go Board vorrätig."),
])
def test_out_of_stock_message(api, catalog, language, message):
    assert api.order(("GM-002", 3), language=language) == (409, {"errors": {"lines": [message]}})


@pytest.mark.parametrize("language, message", [
    ("en", "Cannot change an order from Pending to Shipped."),
    ("fr", "Impossible de passer une commande de « En attente » à « Expédiée »."),
    ("de", "Eine Bestellung kann nicht von „Offen“ zu „Versandt“ wechseln."),
])
def test_refused_transition_message(api, catalog, language, message):
    number = api.order(("GM-001", 1))[1]["number"]
    assert api.post(f"/api/orders/{number}/status/", {"status": "shipped"}, language=language) == (
        409, {"error": message})


@pytest.mark.parametrize("language, message", [
    ("en", "Too many orders: try again in 60 seconds."),
    ("fr", "Trop de commandes : réessayez dans 60 secondes."),
    ("de", "Zu viele Bestellungen: bitte in 60 Sekunden erneut versuchen."),
])
def test_rate_limit_message(api, catalog, settings, language, message):
    settings.ORDER_RATE_LIMIT = 0
    assert api.order(("GM-003", 1), language=language) == (429, {"error": message})


@pytest.mark.parametrize("language, status, label", [
    ("en", "pending", "Pending"), ("en", "paid", "Paid"), ("en", "shipped", "Shipped"),
    ("en", "cancelled", "Cancelled"),
    ("fr", "pending", "En attente"), ("fr", "paid", "Payée"), ("fr", "shipped", "Expédiée"),
    ("fr", "cancelled", "Annulée"),
    ("de", "pending", "Offen"), ("de", "paid", "Bezahlt"), ("de", "shipped", "Versandt"),
    ("de", "cancelled", "Storniert"),
])
def test_status_labels(make_order, language, status, label):
    order = make_order(status=status)
    with translation.override(language):
        assert order.get_status_display() == label


@pytest.mark.parametrize("language, count, text", [
    ("en", 0, "0 items"), ("en", 1, "1 item"), ("en", 2, "2 items"),
    ("fr", 0, "0 article"), ("fr", 1, "1 article"), ("fr", 2, "2 articles"),
    ("de", 0, "0 Artikel"), ("de", 1, "1 Artikel"), ("de", 5, "5 Artikel"),
])
def test_plural_forms(language, count, text):
    with translation.override(language):
        assert format_item_count(count) == text


@pytest.mark.parametrize("language, amount, text", [
    ("en", "3.2", "€3.20"), ("en", "1234.5", "€1,234.50"), ("en", "1234567.891", "€1,234,567.89"),
    ("fr", "3.2", "3,20 €"), ("fr", "1234.5", "1\xa0234,50 €"), ("fr", "1234567.891", "1\xa0234\xa0567,89 €"),
    ("de", "3.2", "3,20 €"), ("de", "1234.5", "1.234,50 €"), ("de", "1234567.891", "1.234.567,89 €"),
    ("en", "0", "€0.00"),
])
def test_prices(language, amount, text):
    with translation.override(language):
        assert format_price(Decimal(amount)) == text


@pytest.mark.parametrize("language, display", [
    ("en", "€1,234.50"), ("fr", "1\xa0234,50 €"), ("de", "1.234,50 €"),
])
def test_prices_in_the_api(api, catalog, language, display):
    body = api.get("/api/products/?q=mu-002", language=language)[1]
    assert body["results"][0]["price_display"] == display


@pytest.mark.parametrize("language, items, total", [
    ("en", "2 items", "€19.98"), ("fr", "2 articles", "19,98 €"), ("de", "2 Artikel", "19,98 €"),
])
def test_an_order_in_each_language(api, catalog, language, items, total):
    body = api.order(("BK-001", 2), language=language)[1]
    assert (body["items_display"], body["total_display"]) == (items, total)


def test_the_site_language_starts_as_the_setting(settings):
    assert site_language() == settings.LANGUAGE_CODE == "en"


def test_the_site_language_lives_in_redis(redis_client):
    set_site_language("fr")
    assert redis_client.get(SITE_LANGUAGE_KEY) == b"fr"


@pytest.mark.parametrize("language", ["fr", "de"])
def test_clients_without_a_language_get_the_site_language(api, language):
    assert api.post("/api/settings/language/", {"language": language}) == (200, {"language": language})
    assert api.get("/api/greeting/") == (200, {"message": WELCOME[language], "language": language})


def test_accept_language_wins_over_the_site_language(api):
    set_site_language("de")
    assert api.get("/api/greeting/", language="fr")[1]["language"] == "fr"


def test_back_to_english(api):
    set_site_language("de")
    set_site_language("en")
    assert api.get("/api/greeting/")[1] == {"message": WELCOME["en"], "language": "en"}


@pytest.mark.parametrize("language", ["es", "", None, "fr-FR"])
def test_unknown_site_language(api, language):
    status, body = api.post("/api/settings/language/", {"language": language})
    assert status == 400
    assert body["error"] == f"Unknown language: {language}."
    assert site_language() == "en"


def test_the_site_language_changes_cached_lists(api, catalog, redis_client):
    api.get("/api/products/")
    set_site_language("fr")
    assert api.get("/api/products/?q=mu-002")[1]["results"][0]["price_display"] == "1\xa0234,50 €"


def test_a_request_leaves_the_language_it_used_active(api):
    api.get("/api/greeting/", language="de")
    # Django does not deactivate after a response: the next code in this thread runs in German. The
    # `english` fixture in conftest.py puts English back before the next test.
    assert translation.get_language() == "de"


def read_po(path):
    """{msgid: msgstr}, and {(msgid, msgid_plural, i): msgstr[i]} for plurals, of a catalog of one-line
    strings (what makemessages writes for these short messages)."""
    entries, msgid, plural = {}, None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r'(msgid|msgid_plural|msgstr|msgstr\[(\d)\]) "(.*)"$', line)
        if not match:
            continue
        keyword, index, text = match.groups()
        text = text.replace('\\"', '"')
        if keyword == "msgid":
            msgid, plural = text, None
        elif keyword == "msgid_plural":
            plural = text
        elif keyword == "msgstr" and msgid:
            entries[msgid] = text
        elif index is not None:
            entries[(msgid, plural, int(index))] = text
    return entries


@pytest.mark.parametrize("language", ["fr", "de"])
def test_the_compiled_catalog_matches_its_source(language):
    po = LOCALE / language / "LC_MESSAGES" / "django.po"
    with open(po.with_suffix(".mo"), "rb") as mo:
        compiled = gnu_gettext.GNUTranslations(mo)
    source = read_po(po)
    assert len(source) >= 25
    for key, text in source.items():
        if isinstance(key, tuple):
            # Both languages use form 0 for one, form 1 for two.
            msgid, plural, index = key
            assert compiled.ngettext(msgid, plural, 1 if index == 0 else 2) == text, key
        else:
            assert compiled.gettext(key) == text, key
