"""Reads cache keys back through Django's own cache.

django.core.cache.backends.redis.RedisCache (Django from PyPI, in the venv the
tests create), configured here with django.conf.settings.configure, the way a
Django application reads it. Prints one JSON line per key:

  {"key": ..., "hit": true, "equal": true, "calls": {"get": true, "has_key": true},
   "value": ..., "error": null}

hit: get() returned the entry and has_key() said true; equal: the value get()
returned is the intended one, strictly (int is not float nor bool, dict keys
are str and in the same order); error: every exception a call raised, caught and reported instead
of crashing.

Usage:
  python django_read.py --url URL [--key-prefix P] [--version N] [--bytes] VALUES.json
  python django_read.py --url URL [--key-prefix P] [--version N] --write VALUES.json [--timeout S]
  python django_read.py --url URL [--key-prefix P] [--version N] --self-test

VALUES.json maps each key to its intended value: the JSON document the
plugin produced (json.loads gives the Python object Django should read), or a
plain string for non-JSON text; with --bytes, the hex of bytes that are not
UTF-8 (which the application caches as bytes). Exit status: 0 when every line was printed
(hits and misses alike), 2 on bad arguments.
"""

import argparse
import json
import sys

import django
from django.conf import settings

# The values --self-test has Django write and read back: every JSON type,
# nested, a big integer, a non-ASCII string.
SELF_TEST = {
    "preheat-self-test/object": {
        "id": 7,
        "name": "Grüße",
        "tags": ["a", "b"],
        "nested": {"t": True, "f": False, "n": None, "x": 0.5},
    },
    "preheat-self-test/array": [1, "two", 3.25, [], {}],
    "preheat-self-test/integer": 47,
    "preheat-self-test/big": 123456789012345678901234567890,
    "preheat-self-test/float": 0.1,
    "preheat-self-test/string": "plain text, ünïcödé",
    "preheat-self-test/false": False,
}

MISSING = object()


def same(got, want):
    """Strict equality: same types all the way down (True is not 1, 1 is not
    1.0), dict keys in the same order (the order the application iterates and
    renders them in)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, dict):
        return list(got) == list(want) and all(same(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    return got == want


def shown(value):
    """The decoded value as JSON-able data, or its repr."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def check(cache, key, want):
    """Reads one key with get() and has_key(); never raises."""
    errors = []
    calls = {}
    value = None
    try:
        got = cache.get(key, MISSING)
        calls["get"] = got is not MISSING
        value = None if got is MISSING else got
    except Exception as e:  # noqa: BLE001 - reported, not raised
        calls["get"] = False
        errors.append(f"get: {type(e).__name__}: {e}")
    try:
        calls["has_key"] = bool(cache.has_key(key))
    except Exception as e:  # noqa: BLE001
        calls["has_key"] = False
        errors.append(f"has_key: {type(e).__name__}: {e}")
    hit = all(calls.values())
    return {
        "key": key,
        "hit": hit,
        "equal": hit and same(value, want),
        "calls": calls,
        "value": shown(value),
        "error": "; ".join(errors) or None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Redis URL of the cache (LOCATION)")
    parser.add_argument("--key-prefix", default="", help="CACHES KEY_PREFIX (default empty)")
    parser.add_argument("--version", type=int, default=1, help="CACHES VERSION (default 1)")
    parser.add_argument("--write", action="store_true", help="the application writes the values itself")
    parser.add_argument("--timeout", type=int, default=None, help="timeout of --write, seconds")
    parser.add_argument("--bytes", action="store_true", help="VALUES.json holds the hex of binary values")
    parser.add_argument("--self-test", action="store_true", help="Django writes sample values, then reads them back")
    parser.add_argument("values", nargs="?", help="VALUES.json")
    args = parser.parse_args()
    if args.self_test == bool(args.values):
        parser.error("give VALUES.json or --self-test")

    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": args.url,
                "KEY_PREFIX": args.key_prefix,
                "VERSION": args.version,
            }
        }
    )
    django.setup()
    from django.core.cache import cache

    def line(row):
        print(json.dumps(row, ensure_ascii=False), flush=True)

    if args.self_test:
        for key, value in SELF_TEST.items():
            cache.set(key, value, 600)
        for key, value in SELF_TEST.items():
            line(check(cache, key, value))
        for key in SELF_TEST:
            cache.delete(key)
        return
    with open(args.values, encoding="utf-8") as f:
        values = json.load(f)
    if not isinstance(values, dict):
        parser.error(f"{args.values}: expected a JSON object mapping keys to values")
    for key, value in values.items():
        if args.bytes:
            value = bytes.fromhex(value)
        if args.write:
            cache.set(key, value, args.timeout)
            line({"key": key, "written": True})
        else:
            line(check(cache, key, value))


if __name__ == "__main__":
    sys.exit(main())
