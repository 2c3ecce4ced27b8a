from shop.cart import Cart
from shop.pricing.tax import with_tax


def test_with_tax_known():
    assert with_tax(100, "fr") == 120


def test_coupon_ten_and_clear():
    cart = Cart()
    cart.add("melon", 5)
    cart.add("kiwi", 20)
    assert cart.total("TEN") == 15
    cart.clear()
    assert cart.total() == 0
