// `js-critical-keys`: the Rust `critical-keys` plugin, written in JavaScript.
//
// Built into a WebAssembly component with componentize-js
// (`scripts/build-guests.sh js`); it lists the same keys, in the same order,
// with the same priorities, tags, args and ttls, and produces the same value
// bytes as `plugins/critical-keys`.
//
// Keys, in enumeration order:
//
//   system.settings        critical  tags critical, config
//   products.catalog.all   critical  tags critical, catalog
//   navigation.menu        critical  tags critical, navigation
//   featured.products      critical  tags critical, catalog
//   user.profile.{id}      normal    tag users, arg = the id
//
// Values have the seed Laravel application's shapes, as in the Rust plugin:
//
//   system.settings        {data, key}: data is the settings map
//   products.catalog.all   {category: "all", products: [product], total_count}
//   navigation.menu        {data, key}: data is {items: [{label, href, children?}]}
//   featured.products      {data, key}: data is {title, products: [{id, name, price_cents}]}
//   user.profile.{id}      {email, id, name, preferences}
//
// Settings (all optional, strings like every preheat setting):
//
//   user_ids   which user profiles: "1-100", "1,5,9", "1-10,20"; overlaps
//              merge, ids come in ascending order; absent or empty: none
//   page_size  keys per `enumerate` page (default 500, at least 1)
//   ttl        time to live in seconds for every key (default: the host's)
//
// The cursor is the offset of the next key in the list above.
//
// This is the id-range mode of the Rust plugin: its `users_source` setting
// (profiles read from a SQL source) is not implemented here.
//
// How the WIT types look from JavaScript (componentize-js conventions):
// records are objects with camelCase fields, enums are lowercase strings,
// `option<T>` is the value or `undefined`, `list<u8>` is a Uint8Array,
// variants and results are `{ tag, val }`, and a function returning
// `result<T, E>` returns T or throws E. Ids and offsets are BigInts so that
// every u64 the Rust plugin accepts is exact here too.

import { log } from 'preheat:plugin/host@0.2.0';

const CRITICAL = [
  ['system.settings', 'config'],
  ['products.catalog.all', 'catalog'],
  ['navigation.menu', 'navigation'],
  ['featured.products', 'catalog'],
];

const USER_PREFIX = 'user.profile.';

const U64_MAX = 2n ** 64n - 1n;
const U32_MAX = 2n ** 32n - 1n;

// What Rust's `u64::from_str` accepts: an optional `+`, then ASCII digits.
const UNSIGNED = /^\+?[0-9]+$/;

/** `{:?}` of a Rust string, so error messages read like the Rust plugin's. */
function rustDebug(text) {
  return JSON.stringify(text);
}

/** The value of `text` as an unsigned BigInt up to `limit`, or undefined. */
function parseUnsigned(text, limit) {
  if (!UNSIGNED.test(text)) return undefined;
  const value = BigInt(text.replace(/^\+/, ''));
  return value <= limit ? value : undefined;
}

/** Why `text` is not an unsigned integer, in the words of Rust's `ParseIntError`. */
function parseIntError(text) {
  if (text === '') return 'cannot parse integer from empty string';
  if (!UNSIGNED.test(text)) return 'invalid digit found in string';
  return 'number too large to fit in target type';
}

/** The raw value of a setting; the last one wins when a name repeats. */
function setting(ctx, name) {
  for (let i = ctx.settings.length - 1; i >= 0; i--) {
    const [key, value] = ctx.settings[i];
    if (key === name) return value;
  }
  return undefined;
}

function settingUnsigned(ctx, name, limit, typeName) {
  const raw = setting(ctx, name);
  if (raw === undefined) return undefined;
  const value = parseUnsigned(raw.trim(), limit);
  if (value === undefined) {
    throw `invalid value ${rustDebug(raw)} for setting ${rustDebug(name)}: ` +
      `${parseIntError(raw.trim())} (expected ${typeName})`;
  }
  return value;
}

/** A set of user ids: sorted, non-overlapping inclusive ranges of BigInts. */
class UserIds {
  constructor(ranges) {
    this.ranges = ranges;
    this.length = ranges.reduce((n, [lo, hi]) => n + hi - lo + 1n, 0n);
  }

  /** Parses "1-100", "1,5,9", "1-10,20", ...; the error names the bad part. */
  static parse(spec) {
    if (spec.trim() === '') return new UserIds([]);
    const ranges = [];
    for (const part of spec.split(',')) {
      const bad = (why) =>
        `bad part ${rustDebug(part.trim())} in ${rustDebug(spec)}: ${why} ` +
        '(expected ids like "1-100", "1,5,9" or "1-10,20")';
      const userId = (text) => {
        const value = parseUnsigned(text.trim(), U64_MAX);
        if (value === undefined) throw bad(`${rustDebug(text.trim())} is not a user id`);
        return value;
      };
      const dash = part.indexOf('-');
      if (dash >= 0) {
        const lo = userId(part.slice(0, dash));
        const hi = userId(part.slice(dash + 1));
        if (lo > hi) throw bad('the range is reversed');
        ranges.push([lo, hi]);
      } else {
        const one = userId(part);
        ranges.push([one, one]);
      }
    }
    ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const merged = [];
    for (const [lo, hi] of ranges) {
      const last = merged[merged.length - 1];
      if (last !== undefined && lo <= last[1] + 1n) {
        last[1] = hi > last[1] ? hi : last[1];
      } else {
        merged.push([lo, hi]);
      }
    }
    return new UserIds(merged);
  }

  /** The `n`th id in ascending order (`n < length`). */
  nth(n) {
    for (const [lo, hi] of this.ranges) {
      const size = hi - lo + 1n;
      if (n < size) return lo + n;
      n -= size;
    }
    throw new RangeError('user id index out of range');
  }
}

function readSettings(ctx) {
  const spec = setting(ctx, 'user_ids');
  let users;
  try {
    users = spec === undefined ? new UserIds([]) : UserIds.parse(spec);
  } catch (e) {
    throw `setting "user_ids": ${e}`;
  }
  const pageSize = settingUnsigned(ctx, 'page_size', U64_MAX, 'u64') ?? 500n;
  if (pageSize === 0n) throw 'setting "page_size" must be at least 1, got 0';
  const ttl = settingUnsigned(ctx, 'ttl', U32_MAX, 'u32');
  return { users, pageSize, ttl: ttl === undefined ? undefined : Number(ttl) };
}

function enumerate(ctx, cursor) {
  const settings = readSettings(ctx);
  let start = 0n;
  if (cursor !== undefined) {
    start = parseUnsigned(cursor, U64_MAX);
    if (start === undefined) throw `invalid cursor ${rustDebug(cursor)}: expected a key offset`;
  }
  const critical = BigInt(CRITICAL.length);
  const total = critical + settings.users.length;
  if (start === 0n) {
    log('debug', `enumerating ${CRITICAL.length} critical keys and ${settings.users.length} user profiles`);
  }
  const end = total < start + settings.pageSize ? total : start + settings.pageSize;
  const keys = [];
  for (let offset = start; offset < end; offset++) {
    if (offset < critical) {
      const [key, tag] = CRITICAL[Number(offset)];
      keys.push({ key, priority: 'critical', ttlSeconds: settings.ttl, tags: ['critical', tag], arg: undefined });
    } else {
      const id = settings.users.nth(offset - critical);
      keys.push({
        key: `${USER_PREFIX}${id}`,
        priority: 'normal',
        ttlSeconds: settings.ttl,
        tags: ['users'],
        arg: String(id),
      });
    }
  }
  return { keys: packKeys(keys), cursor: end < total ? String(end) : undefined };
}

// Interface 0.2 carries a page's keys in columns: the keys' UTF-8 bytes one
// after another in `text` (`keyEnds` says where each ends, in bytes), then
// each key's arg and tags, named by the key's index; priorities and ttls in
// runs of consecutive keys that share them.
function packKeys(specs) {
  const parts = [];
  let bytes = 0;
  const place = (s) => {
    const encoded = encoder.encode(s);
    parts.push(encoded);
    bytes += encoded.length;
    return encoded.length;
  };
  const keyEnds = [];
  const runs = [];
  for (const spec of specs) {
    place(spec.key);
    keyEnds.push(bytes);
    const run = runs[runs.length - 1];
    if (run !== undefined && run.priority === spec.priority && run.ttlSeconds === spec.ttlSeconds) {
      run.count += 1;
    } else {
      runs.push({ count: 1, priority: spec.priority, ttlSeconds: spec.ttlSeconds });
    }
  }
  const args = [];
  const tags = [];
  specs.forEach((spec, key) => {
    const text = (s) => {
      const start = bytes;
      return { key, start, len: place(s) };
    };
    if (spec.arg !== undefined) args.push(text(spec.arg));
    for (const tag of spec.tags) tags.push(text(tag));
  });
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return { text: decoder.decode(all), keyEnds: new Uint32Array(keyEnds), runs, args, tags };
}

// Interface 0.2 packs a batch in columns: the keys are consecutive slices of
// the UTF-8 bytes of `batch.text`, ending at `batch.keyEnds`, and an arg names
// its key by index; the values go back concatenated in `values`, with one
// length per key in `lens` and the keys without a value in `errors`.
function produce(_ctx, batch) {
  const text = encoder.encode(batch.text);
  const slice = (start, end) => decoder.decode(text.subarray(start, end));
  const args = new Map(batch.args.map((a) => [a.key, slice(a.start, a.start + a.len)]));
  const lens = new Uint32Array(batch.keyEnds.length);
  const errors = [];
  const parts = [];
  let start = 0;
  batch.keyEnds.forEach((end, i) => {
    const result = produceOne(slice(start, end), args.get(i));
    start = end;
    if (result.tag === 'err') {
      errors.push({ key: i, error: result.val });
      return;
    }
    parts.push(result.val);
    lens[i] = result.val.length;
  });
  const values = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of parts) {
    values.set(part, at);
    at += part.length;
  }
  return { values, lens, errors, ttls: [] };
}

const fail = (message) => ({ tag: 'err', val: { tag: 'fail', val: message } });

function produceOne(key, arg) {
  let doc;
  if (key === 'system.settings') {
    doc = keyed(key, systemSettings());
  } else if (key === 'products.catalog.all') {
    doc = catalogAll();
  } else if (key === 'navigation.menu') {
    doc = keyed(key, navigationMenu());
  } else if (key === 'featured.products') {
    doc = keyed(key, featuredProducts());
  } else if (key.startsWith(USER_PREFIX)) {
    const raw = arg ?? key.slice(USER_PREFIX.length);
    const id = parseUnsigned(raw, U64_MAX);
    if (id === undefined) return fail(`${key}: ${rustDebug(raw)} is not a user id`);
    doc = userProfile(id);
  } else {
    return fail(`unknown key ${rustDebug(key)}`);
  }
  return { tag: 'ok', val: encoder.encode(toJson(doc)) };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * JSON text exactly as serde_json's `to_vec` writes it in the Rust plugin:
 * object keys sorted, no whitespace, BigInts as plain integers.
 */
function toJson(value) {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${toJson(value[k])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

// `{key, data}`: how the seed application caches a key that is neither a
// user profile nor a product catalog.
function keyed(key, data) {
  return { key, data };
}

// The catalog of every category, as the seed application caches
// `products.catalog.{category}`: `{category, products, total_count}`.
function catalogAll() {
  const products = catalog();
  return { category: 'all', total_count: products.length, products };
}

function systemSettings() {
  return {
    site_name: 'Preheat Demo Shop',
    currency: 'EUR',
    default_locale: 'en-GB',
    supported_locales: ['en-GB', 'fr-FR', 'de-DE'],
    maintenance_mode: false,
    checkout: { guest_checkout: true, max_items_per_order: 50 },
    features: { reviews: true, wishlist: true, recommendations: true },
  };
}

// [id, sku, name, price in cents, category, stock]
const PRODUCTS = [
  [101, 'KB-001', 'Mechanical Keyboard', 8999, 'peripherals', 42],
  [102, 'MS-002', 'Wireless Mouse', 2999, 'peripherals', 120],
  [103, 'MN-003', '27" Monitor', 24999, 'displays', 15],
  [104, 'HS-004', 'Noise-Cancelling Headset', 14999, 'audio', 33],
  [105, 'DK-005', 'USB-C Dock', 11999, 'accessories', 0],
  [106, 'CM-006', '4K Webcam', 9999, 'video', 27],
];

function catalog() {
  return PRODUCTS.map(([id, sku, name, price_cents, category, stock]) => ({
    id,
    sku,
    name,
    price_cents,
    category,
    in_stock: stock > 0,
    stock,
  }));
}

function navigationMenu() {
  return {
    items: [
      { label: 'Home', href: '/' },
      {
        label: 'Shop',
        href: '/shop',
        children: [
          { label: 'Peripherals', href: '/shop/peripherals' },
          { label: 'Displays', href: '/shop/displays' },
          { label: 'Audio', href: '/shop/audio' },
          { label: 'Accessories', href: '/shop/accessories' },
        ],
      },
      { label: 'Deals', href: '/deals' },
      {
        label: 'Account',
        href: '/account',
        children: [
          { label: 'Orders', href: '/account/orders' },
          { label: 'Wishlist', href: '/account/wishlist' },
        ],
      },
      { label: 'Help', href: '/help' },
    ],
  };
}

function featuredProducts() {
  const products = PRODUCTS.filter(([id]) => [101, 103, 104].includes(id)).map(
    ([id, , name, price_cents]) => ({ id, name, price_cents }),
  );
  return { title: 'Featured this week', products };
}

const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Linus', 'Barbara', 'Ken', 'Margaret', 'Dennis'];
const LAST_NAMES = ['Lovelace', 'Hopper', 'Turing', 'Torvalds', 'Liskov', 'Thompson', 'Hamilton', 'Ritchie'];
const THEMES = ['light', 'dark', 'system'];
const LANGUAGES = ['en', 'fr', 'de'];

function userProfile(id) {
  const first = FIRST_NAMES[Number(id % 8n)];
  const last = LAST_NAMES[Number((id / 8n) % 8n)];
  return {
    id,
    name: `${first} ${last}`,
    email: `${first.toLowerCase()}.${last.toLowerCase()}${id}@example.com`,
    preferences: {
      theme: THEMES[Number(id % 3n)],
      language: LANGUAGES[Number((id / 3n) % 3n)],
      newsletter: id % 2n === 0n,
    },
  };
}

/** The `preheat:plugin/warmer` export. */
export const warmer = { enumerate, produce };
