"""shop.cache.RedisCache through Django's cache API, checked against what Redis itself holds. The keys are
fixed names, as application code uses them, and the tests count what the Redis database contains."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.base import CacheKeyWarning

from shop.cache import RedisCache

VALUES = [
    0, 42, -7, 2**62, 3.25, "text", "ünïcødé ✓", b"\x00\x80bytes", "", [1, "two", 3.0], {"a": [1, {"b": None}]},
    (1, 2), {1, 2, 3}, Decimal("1234.50"), True, False, datetime.date(2024, 6, 1), uuid.UUID(int=7),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(value):
    cache.set("value", value)
    loaded = cache.get("value")
    assert loaded == value
    assert type(loaded) is type(value)


def test_none_is_stored_too():
    cache.set("nothing", None)
    assert cache.get("nothing", "missing") is None
    assert cache.has_key("nothing")


def test_missing_key_gives_the_default():
    assert cache.get("absent") is None
    assert cache.get("absent", 17) == 17


def test_integers_are_stored_as_digits(redis_client):
    cache.set("hits", 42)
    assert redis_client.get(cache.make_key("hits")) == b"42"


def test_other_values_are_pickled(redis_client):
    cache.set("name", "dune")
    assert redis_client.get(cache.make_key("name")).startswith(b"\x80")


def test_keys_carry_the_version(redis_client):
    cache.set("k", 1)
    assert redis_client.keys("*") == [b":1:k"]


def test_the_database_holds_only_this_tests_keys(redis_client):
    cache.set_many({f"key-{i}": i for i in range(25)})
    assert redis_client.dbsize() == 25


def test_add_only_when_absent():
    assert cache.add("once", 1) is True
    assert cache.add("once", 2) is False
    assert cache.get("once") == 1


def test_add_with_a_timeout_of_zero_stores_nothing(redis_client):
    assert cache.add("gone", 1, timeout=0) is True
    assert redis_client.dbsize() == 0


def test_set_with_a_timeout_of_zero_deletes():
    cache.set("gone", 1)
    cache.set("gone", 2, timeout=0)
    assert not cache.has_key("gone")


@pytest.mark.parametrize("timeout", [-1, -0.5])
def test_a_negative_timeout_deletes(timeout):
    cache.set("gone", 1)
    cache.set("gone", 2, timeout=timeout)
    assert cache.get("gone") is None


def test_the_default_timeout(redis_client):
    cache.set("default", 1)
    assert 295 <= redis_client.ttl(cache.make_key("default")) <= 300


@pytest.mark.parametrize("timeout, ttl", [(10, 10), (2.2, 3), (0.7, 1), (3600, 3600)])
def test_timeouts_in_seconds(redis_client, timeout, ttl):
    cache.set("t", 1, timeout=timeout)
    assert ttl - 1 <= redis_client.ttl(cache.make_key("t")) <= ttl


def test_no_timeout_means_forever(redis_client):
    cache.set("forever", 1, timeout=None)
    assert redis_client.ttl(cache.make_key("forever")) == -1


def test_delete_says_whether_there_was_something():
    cache.set("k", 1)
    assert cache.delete("k") is True
    assert cache.delete("k") is False


def test_get_many_leaves_out_missing_keys():
    cache.set_many({"a": 1, "b": "two", "c": [3]})
    assert cache.get_many(["a", "c", "zzz"]) == {"a": 1, "c": [3]}


def test_get_many_of_nothing():
    assert cache.get_many([]) == {}


def test_set_many_with_timeout(redis_client):
    assert cache.set_many({"a": 1, "b": 2}, timeout=50) == []
    assert all(45 <= redis_client.ttl(cache.make_key(k)) <= 50 for k in "ab")


def test_set_many_with_a_timeout_of_zero():
    cache.set("a", 1)
    cache.set_many({"a": 2, "b": 3}, timeout=0)
    assert cache.get_many(["a", "b"]) == {}


def test_delete_many(redis_client):
    cache.set_many({"a": 1, "b": 2, "c": 3})
    cache.delete_many(["a", "b", "not-there"])
    assert redis_client.keys("*") == [cache.make_key("c").encode()]


def test_delete_many_of_nothing():
    cache.delete_many([])


def test_has_key_and_in():
    cache.set("here", 0)
    assert cache.has_key("here")
    assert "here" in cache
    assert "elsewhere" not in cache


@pytest.mark.parametrize("start, delta, result", [(0, 1, 1), (10, 5, 15), (10, -15, -5), (-3, 3, 0)])
def test_incr(start, delta, result):
    cache.set("n", start)
    assert cache.incr("n", delta) == result
    assert cache.get("n") == result


def test_decr():
    cache.set("n", 10)
    assert cache.decr("n", 4) == 6


def test_incr_keeps_the_timeout(redis_client):
    cache.set("n", 1, timeout=100)
    cache.incr("n")
    assert redis_client.ttl(cache.make_key("n")) > 90


def test_incr_of_a_missing_key():
    with pytest.raises(ValueError):
        cache.incr("missing")
    assert not cache.has_key("missing")


def test_incr_of_text():
    cache.set("word", "ten")
    with pytest.raises(TypeError):
        cache.incr("word")


def test_get_or_set_computes_once():
    calls = []

    def compute():
        calls.append(1)
        return "computed"

    assert cache.get_or_set("lazy", compute) == "computed"
    assert cache.get_or_set("lazy", compute) == "computed"
    assert calls == [1]


def test_touch(redis_client):
    cache.set("k", 1, timeout=10)
    assert cache.touch("k", 1000) is True
    assert redis_client.ttl(cache.make_key("k")) > 900


def test_touch_forever(redis_client):
    cache.set("k", 1, timeout=10)
    assert cache.touch("k", None) is True
    assert redis_client.ttl(cache.make_key("k")) == -1
    assert cache.touch("k", None) is True


def test_touch_with_zero_deletes():
    cache.set("k", 1)
    assert cache.touch("k", 0) is True
    assert not cache.has_key("k")


@pytest.mark.parametrize("timeout", [10, None, 0])
def test_touch_of_a_missing_key(timeout):
    assert cache.touch("missing", timeout) is False


def test_versions_are_separate():
    cache.set("v", "one", version=1)
    cache.set("v", "two", version=2)
    assert (cache.get("v"), cache.get("v", version=2)) == ("one", "two")


def test_incr_version():
    cache.set("v", "value")
    assert cache.incr_version("v") == 2
    assert cache.get("v") is None
    assert cache.get("v", version=2) == "value"


def test_key_prefix(settings, redis_client):
    backend = RedisCache(settings.REDIS_URL, {"KEY_PREFIX": "shop", "TIMEOUT": 60})
    backend.set("k", 5)
    assert redis_client.get("shop:1:k") == b"5"
    assert cache.get("k") is None


def test_clear_empties_the_whole_database(redis_client):
    cache.set_many({"a": 1, "b": 2})
    redis_client.set("written-by-someone-else", 1)
    cache.clear()
    assert redis_client.dbsize() == 0


def test_a_key_with_a_space_is_refused_for_portability():
    with pytest.warns(CacheKeyWarning):
        cache.set("with space", 1)


def test_a_very_long_key_is_refused_for_portability():
    with pytest.warns(CacheKeyWarning):
        cache.get("k" * 300)


def test_close_keeps_the_connection():
    cache.set("k", 1)
    cache.close()
    assert cache.get("k") == 1


def test_the_configured_backend():
    assert isinstance(caches["default"], RedisCache)
    assert caches["default"].default_timeout == 300


def test_server_given_as_a_list(settings):
    backend = RedisCache([settings.REDIS_URL], {})
    backend.set("k", "v")
    assert cache.get("k") == "v"
