import pytest

from shop.cart import Cart


def test_add_and_total():
    cart = Cart()
    cart.add("apple", 2)
    cart.add("apple", 2)
    assert cart.total() == 4


def test_coupon_half():
    cart = Cart()
    cart.add("pear", 10)
    assert cart.total("HALF") == 5


def test_bad_quantity():
    with pytest.raises(ValueError):
        Cart().add("x", 1, 0)
