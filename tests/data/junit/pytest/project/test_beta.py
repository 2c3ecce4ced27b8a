import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("database unavailable")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("cleanup failed")


def test_setup_error(broken_setup):
    pass


def test_fails_then_teardown_error(broken_teardown):
    assert 0 == 1


class TestGroup:
    def test_in_class(self):
        assert True

    def test_thousands(self):
        assert "a" < "b"
