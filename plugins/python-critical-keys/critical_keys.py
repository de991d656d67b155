"""`python-critical-keys`: the Rust `critical-keys` plugin, written in Python.

Built into a WebAssembly component with componentize-py
(`scripts/build-guests.sh python`); it lists the same keys, in the same
order, with the same priorities, tags, args and ttls, and produces the same
value bytes as `plugins/critical-keys`.

Keys, in enumeration order:

    system.settings        critical  tags critical, config
    products.catalog.all   critical  tags critical, catalog
    navigation.menu        critical  tags critical, navigation
    featured.products      critical  tags critical, catalog
    user.profile.{id}      normal    tag users, arg = the id

Settings (all optional, strings like every preheat setting):

    user_ids   which user profiles: "1-100", "1,5,9", "1-10,20"; overlaps
               merge, ids come in ascending order; absent or empty: none
    page_size  keys per `enumerate` page (default 500, at least 1)
    ttl        time to live in seconds for every key (default: the host's)

The cursor is the offset of the next key in the list above.

This is the id-range mode of the Rust plugin: its `users_source` setting
(profiles read from a SQL source) is not implemented here.

Values are JSON documents serialized the way serde_json does it in the Rust
plugin: object keys sorted, no whitespace, non-ASCII characters unescaped.
Their shapes are the seed Laravel application's, as in the Rust plugin:

    system.settings        {data, key}: data is the settings map
    products.catalog.all   {category: "all", products: [product], total_count}
    navigation.menu        {data, key}: data is {items: [{label, href, children?}]}
    featured.products      {data, key}: data is {title, products: [{id, name, price_cents}]}
    user.profile.{id}      {email, id, name, preferences}
"""

import json
import re
from typing import List, Optional, Tuple

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import host, types

CRITICAL = [
    ("system.settings", "config"),
    ("products.catalog.all", "catalog"),
    ("navigation.menu", "navigation"),
    ("featured.products", "catalog"),
]

USER_PREFIX = "user.profile."

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1

# What Rust's `u64::from_str` accepts: an optional `+`, then ASCII digits.
_UNSIGNED = re.compile(r"\+?[0-9]+")


def rust_debug(text: str) -> str:
    """`{:?}` of a Rust string, for error messages that read like the Rust plugin's."""
    return json.dumps(text, ensure_ascii=False)


def parse_unsigned(text: str, limit: int) -> Optional[int]:
    """The value of `text` as an unsigned integer up to `limit`, or None."""
    if _UNSIGNED.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= limit else None


def parse_int_error(text: str) -> str:
    """Why `text` is not an unsigned integer, in the words of Rust's `ParseIntError`."""
    if text == "":
        return "cannot parse integer from empty string"
    if _UNSIGNED.fullmatch(text) is None:
        return "invalid digit found in string"
    return "number too large to fit in target type"


def setting(ctx: types.RunContext, name: str) -> Optional[str]:
    """The raw value of a setting; the last one wins when a name repeats."""
    for key, value in reversed(ctx.settings):
        if key == name:
            return value
    return None


def setting_unsigned(ctx: types.RunContext, name: str, limit: int, type_name: str) -> Optional[int]:
    raw = setting(ctx, name)
    if raw is None:
        return None
    value = parse_unsigned(raw.strip(), limit)
    if value is None:
        raise Err(
            f"invalid value {rust_debug(raw)} for setting {rust_debug(name)}: "
            f"{parse_int_error(raw.strip())} (expected {type_name})"
        )
    return value


class UserIds:
    """A set of user ids: sorted, non-overlapping inclusive ranges."""

    def __init__(self, ranges: List[Tuple[int, int]]):
        self.ranges = ranges

    @staticmethod
    def parse(spec: str) -> "UserIds":
        """Parses "1-100", "1,5,9", "1-10,20", ...; the error names the bad part."""
        if not spec.strip():
            return UserIds([])
        ranges = []
        for part in spec.split(","):

            def bad(why: str, part: str = part) -> str:
                return (
                    f"bad part {rust_debug(part.strip())} in {rust_debug(spec)}: {why} "
                    '(expected ids like "1-100", "1,5,9" or "1-10,20")'
                )

            def user_id(text: str, bad=bad) -> int:
                value = parse_unsigned(text.strip(), U64_MAX)
                if value is None:
                    raise ValueError(bad(f"{rust_debug(text.strip())} is not a user id"))
                return value

            if "-" in part:
                lo_text, hi_text = part.split("-", 1)
                lo, hi = user_id(lo_text), user_id(hi_text)
                if lo > hi:
                    raise ValueError(bad("the range is reversed"))
                ranges.append((lo, hi))
            else:
                one = user_id(part)
                ranges.append((one, one))
        ranges.sort(key=lambda r: r[0])
        merged: List[Tuple[int, int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return UserIds(merged)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def nth(self, n: int) -> int:
        """The `n`th id in ascending order (`n < len(self)`)."""
        for lo, hi in self.ranges:
            size = hi - lo + 1
            if n < size:
                return lo + n
            n -= size
        raise IndexError("user id index out of range")


class Settings:
    def __init__(self, ctx: types.RunContext):
        spec = setting(ctx, "user_ids")
        try:
            self.users = UserIds.parse(spec) if spec is not None else UserIds([])
        except ValueError as e:
            raise Err(f'setting "user_ids": {e}')
        page_size = setting_unsigned(ctx, "page_size", U64_MAX, "u64")
        self.page_size = 500 if page_size is None else page_size
        if self.page_size == 0:
            raise Err('setting "page_size" must be at least 1, got 0')
        self.ttl = setting_unsigned(ctx, "ttl", U32_MAX, "u32")


class Warmer(exports.Warmer):
    def enumerate(self, ctx: types.RunContext, cursor: Optional[str]) -> types.Page:
        settings = Settings(ctx)
        if cursor is None:
            start = 0
        else:
            start = parse_unsigned(cursor, U64_MAX)
            if start is None:
                raise Err(f"invalid cursor {rust_debug(cursor)}: expected a key offset")
        total = len(CRITICAL) + len(settings.users)
        if start == 0:
            host.log(
                types.Level.DEBUG,
                f"enumerating {len(CRITICAL)} critical keys and {len(settings.users)} user profiles",
            )
        end = min(total, start + settings.page_size)
        keys = []
        for offset in range(start, end):
            if offset < len(CRITICAL):
                key, tag = CRITICAL[offset]
                spec = types.KeySpec(key, types.Priority.CRITICAL, settings.ttl, ["critical", tag], None)
            else:
                uid = settings.users.nth(offset - len(CRITICAL))
                spec = types.KeySpec(f"{USER_PREFIX}{uid}", types.Priority.NORMAL, settings.ttl, ["users"], str(uid))
            keys.append(spec)
        return types.Page(pack_keys(keys), str(end) if end < total else None)

    def produce(self, ctx: types.RunContext, batch: types.KeyBatch) -> types.Produced:
        """Interface 0.2 packs a batch in columns: the keys are consecutive
        slices of the UTF-8 bytes of `batch.text`, ending at `batch.key_ends`,
        and an arg names its key by index; the values go back concatenated,
        with one length per key and the keys without a value in `errors`."""
        text = batch.text.encode("utf-8")
        args = {a.key: text[a.start:a.start + a.len].decode("utf-8") for a in batch.args}
        values = bytearray()
        lens = []
        errors = []
        start = 0
        for i, end in enumerate(batch.key_ends):
            result = produce_one(text[start:end].decode("utf-8"), args.get(i))
            start = end
            if isinstance(result, Ok):
                values += result.value
                lens.append(len(result.value))
            else:
                errors.append(types.KeyError(i, result.value))
                lens.append(0)
        return types.Produced(bytes(values), lens, errors, [])


def pack_keys(specs: List[types.KeySpec]) -> types.KeyBatch:
    """Key specs in columns, as interface 0.2 carries a page: the keys' UTF-8
    bytes one after another in `text` (`key_ends` says where each ends), then
    each key's arg and tags, named by the key's index; priorities and ttls in
    runs of consecutive keys that share them."""
    text = bytearray()
    key_ends = []
    runs = []
    for spec in specs:
        text += spec.key.encode("utf-8")
        key_ends.append(len(text))
        if runs and runs[-1][1:] == [spec.priority, spec.ttl_seconds]:
            runs[-1][0] += 1
        else:
            runs.append([1, spec.priority, spec.ttl_seconds])

    def place(i: int, s: str) -> types.KeyText:
        start = len(text)
        text.extend(s.encode("utf-8"))
        return types.KeyText(i, start, len(text) - start)

    args = []
    tags = []
    for i, spec in enumerate(specs):
        if spec.arg is not None:
            args.append(place(i, spec.arg))
        tags.extend(place(i, tag) for tag in spec.tags)
    key_runs = [types.KeyRun(count, priority, ttl) for count, priority, ttl in runs]
    return types.KeyBatch(text.decode("utf-8"), key_ends, key_runs, args, tags)


def produce_one(key: str, arg: Optional[str]):
    """The value bytes of one key (`Ok`), or why not (`Err`)."""
    if key == "system.settings":
        doc = keyed(key, system_settings())
    elif key == "products.catalog.all":
        doc = catalog_all()
    elif key == "navigation.menu":
        doc = keyed(key, navigation_menu())
    elif key == "featured.products":
        doc = keyed(key, featured_products())
    elif key.startswith(USER_PREFIX):
        raw = arg if arg is not None else key[len(USER_PREFIX):]
        uid = parse_unsigned(raw, U64_MAX)
        if uid is None:
            return Err(types.WarmError_Fail(f"{key}: {rust_debug(raw)} is not a user id"))
        doc = user_profile(uid)
    else:
        return Err(types.WarmError_Fail(f"unknown key {rust_debug(key)}"))
    return Ok(to_json(doc))


def to_json(doc) -> bytes:
    """JSON bytes exactly as serde_json's `to_vec` writes them in the Rust plugin."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def keyed(key: str, data: dict) -> dict:
    """`{key, data}`: how the seed application caches a key that is neither a
    user profile nor a product catalog."""
    return {"key": key, "data": data}


def catalog_all() -> dict:
    """The catalog of every category, as the seed application caches
    `products.catalog.{category}`: `{category, products, total_count}`."""
    products = catalog()
    return {"category": "all", "total_count": len(products), "products": products}


def system_settings() -> dict:
    return {
        "site_name": "Preheat Demo Shop",
        "currency": "EUR",
        "default_locale": "en-GB",
        "supported_locales": ["en-GB", "fr-FR", "de-DE"],
        "maintenance_mode": False,
        "checkout": {"guest_checkout": True, "max_items_per_order": 50},
        "features": {"reviews": True, "wishlist": True, "recommendations": True},
    }


# (id, sku, name, price in cents, category, stock)
PRODUCTS = [
    (101, "KB-001", "Mechanical Keyboard", 8999, "peripherals", 42),
    (102, "MS-002", "Wireless Mouse", 2999, "peripherals", 120),
    (103, "MN-003", '27" Monitor', 24999, "displays", 15),
    (104, "HS-004", "Noise-Cancelling Headset", 14999, "audio", 33),
    (105, "DK-005", "USB-C Dock", 11999, "accessories", 0),
    (106, "CM-006", "4K Webcam", 9999, "video", 27),
]


def catalog() -> list:
    return [
        {
            "id": pid,
            "sku": sku,
            "name": name,
            "price_cents": price_cents,
            "category": category,
            "in_stock": stock > 0,
            "stock": stock,
        }
        for (pid, sku, name, price_cents, category, stock) in PRODUCTS
    ]


def navigation_menu() -> dict:
    return {
        "items": [
            {"label": "Home", "href": "/"},
            {
                "label": "Shop",
                "href": "/shop",
                "children": [
                    {"label": "Peripherals", "href": "/shop/peripherals"},
                    {"label": "Displays", "href": "/shop/displays"},
                    {"label": "Audio", "href": "/shop/audio"},
                    {"label": "Accessories", "href": "/shop/accessories"},
                ],
            },
            {"label": "Deals", "href": "/deals"},
            {
                "label": "Account",
                "href": "/account",
                "children": [
                    {"label": "Orders", "href": "/account/orders"},
                    {"label": "Wishlist", "href": "/account/wishlist"},
                ],
            },
            {"label": "Help", "href": "/help"},
        ]
    }


def featured_products() -> dict:
    featured = [
        {"id": pid, "name": name, "price_cents": price_cents}
        for (pid, _, name, price_cents, _, _) in PRODUCTS
        if pid in (101, 103, 104)
    ]
    return {"title": "Featured this week", "products": featured}


FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie"]
THEMES = ["light", "dark", "system"]
LANGUAGES = ["en", "fr", "de"]


def user_profile(uid: int) -> dict:
    first = FIRST_NAMES[uid % 8]
    last = LAST_NAMES[(uid // 8) % 8]
    return {
        "id": uid,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{uid}@example.com",
        "preferences": {
            "theme": THEMES[uid % 3],
            "language": LANGUAGES[(uid // 3) % 3],
            "newsletter": uid % 2 == 0,
        },
    }
