"""A Django cache backend on redis-py, for Django 3.2 (which has none built in; 4.0 added one).

Values are pickled, except plain integers, which are stored as their decimal digits so that incr() and
decr() are Redis's own atomic INCRBY and other clients can read counters. Pickles (protocol 2 and later)
start with byte 0x80, so they can never be mistaken for digits.

clear() is FLUSHDB: it empties the whole Redis database that LOCATION names, including keys written by any
other process using the same database. That is what the tests call before each test, and why two test
processes must never share one Redis database.
"""

import math
import pickle
import re

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

INTEGER = re.compile(rb"-?[0-9]+")


class RedisCache(BaseCache):
    def __init__(self, server, params):
        super().__init__(params)
        self._url = server if isinstance(server, str) else server[0]
        options = params.get("OPTIONS", {})
        self._socket_timeout = options.get("SOCKET_TIMEOUT", 10)
        self._client = None

    @property
    def client(self):
        # Created on first use so that importing the settings never opens a connection; redis-py's pool
        # notices a fork and reconnects in the child.
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=self._socket_timeout, socket_connect_timeout=self._socket_timeout
            )
        return self._client

    def _key(self, key, version):
        key = self.make_key(key, version=version)
        self.validate_key(key)
        return key

    def _seconds(self, timeout):
        """Redis's expiry in seconds: None for no expiry, 0 or less for "already expired"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if timeout <= 0:
            return 0
        return max(1, math.ceil(timeout))

    @staticmethod
    def _dump(value):
        if type(value) is int:
            return str(value).encode()
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def _load(data):
        if INTEGER.fullmatch(data):
            return int(data)
        return pickle.loads(data)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self._key(key, version)
        seconds = self._seconds(timeout)
        if seconds is not None and seconds <= 0:
            return not self.client.exists(key)
        return bool(self.client.set(key, self._dump(value), ex=seconds, nx=True))

    def get(self, key, default=None, version=None):
        data = self.client.get(self._key(key, version))
        return default if data is None else self._load(data)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self._key(key, version)
        seconds = self._seconds(timeout)
        if seconds is not None and seconds <= 0:
            self.client.delete(key)
            return
        self.client.set(key, self._dump(value), ex=seconds)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self._key(key, version)
        seconds = self._seconds(timeout)
        if seconds is None:
            return self.client.persist(key) or bool(self.client.exists(key))
        if seconds <= 0:
            return bool(self.client.delete(key))
        return bool(self.client.expire(key, seconds))

    def delete(self, key, version=None):
        return bool(self.client.delete(self._key(key, version)))

    def get_many(self, keys, version=None):
        keys = list(keys)
        if not keys:
            return {}
        values = self.client.mget([self._key(key, version) for key in keys])
        return {key: self._load(data) for key, data in zip(keys, values) if data is not None}

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        seconds = self._seconds(timeout)
        with self.client.pipeline() as pipe:
            for key, value in data.items():
                key = self._key(key, version)
                if seconds is not None and seconds <= 0:
                    pipe.delete(key)
                else:
                    pipe.set(key, self._dump(value), ex=seconds)
            pipe.execute()
        return []

    def delete_many(self, keys, version=None):
        keys = [self._key(key, version) for key in keys]
        if keys:
            self.client.delete(*keys)

    def has_key(self, key, version=None):
        return bool(self.client.exists(self._key(key, version)))

    def incr(self, key, delta=1, version=None):
        key = self._key(key, version)
        # EXISTS then INCRBY in one transaction: Django's contract is a ValueError for a missing key, where
        # Redis would create it.
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    data = pipe.get(key)
                    if data is None:
                        raise ValueError(f"Key '{key}' not found")
                    if not INTEGER.fullmatch(data):
                        raise TypeError(f"Key '{key}' does not hold an integer")
                    pipe.multi()
                    pipe.incrby(key, delta)
                    return pipe.execute()[0]
                except redis.WatchError:
                    continue

    def clear(self):
        self.client.flushdb()

    def close(self, **kwargs):
        # Django calls close() after every request; the connection pool is meant to outlive requests.
        pass
