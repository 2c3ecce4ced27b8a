import pytest


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert [1, 2] == [1, 3], "lists differ"


@pytest.mark.skip(reason="not on this platform")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known bug")
def test_expected_failure():
    assert False


@pytest.mark.parametrize("value", [1, 2, 3])
def test_parametrized(value):
    assert value < 3


def test_prints_control_character():
    print("bell \x07 escape \x1b done")
    assert False
