// `__NAME__`: a preheat cache warming plugin, in JavaScript.
//
// Warms `__NAME__:item:{n}` for n in 1..=count, each a small JSON document.
// Replace the key listing and the values with your own; keep the shape:
// `enumerate` lists keys a page at a time, `produce` builds one value per key.
//
// Settings (the `[plugins.settings]` table of the config, or
// `preheat plugin test --setting name=value`), all strings:
//
//   count      how many keys (default 10)
//   page_size  keys per `enumerate` page (default 100, at least 1)
//   ttl        time to live in seconds of every key (default: the host's)
//
// Build: ./build.sh          (componentize-js; writes target/__SNAKE__.wasm)
// Test:  preheat plugin test target/__SNAKE__.wasm
//
// WIT types in JavaScript: records are objects with camelCase fields, enums
// are lowercase strings, `option<T>` is the value or `undefined`,
// `list<u8>` is a Uint8Array, variants and results are `{ tag, val }`, and a
// function returning `result<T, E>` returns T or throws E (`query` throws a
// host-error `{ kind, message }`, kind 'transient' when retrying can help).
//
// Keys cross packed in columns (the keys consecutive slices of the UTF-8
// bytes of `text`, ending at `keyEnds`), both ways: `enumerate` returns its
// page's keys so (`packKeys` below packs a list of key specs), and `produce`
// takes its batch so and returns its values packed (the bytes concatenated,
// one length per key, the errors by key index); `produce` below does that,
// so `produceOne` sees one key at a time.

import { log } from 'preheat:plugin/host@0.2.0';

// Every key starts with this; grant it with `key_prefixes` in the config.
const PREFIX = '__NAME__:item:';

/** The raw value of a setting; the last one wins when a name repeats. */
function setting(ctx, name) {
  for (let i = ctx.settings.length - 1; i >= 0; i--) {
    if (ctx.settings[i][0] === name) return ctx.settings[i][1];
  }
  return undefined;
}

function settingInt(ctx, name, fallback) {
  const raw = setting(ctx, name);
  if (raw === undefined) return fallback;
  if (!/^[0-9]+$/.test(raw.trim())) {
    throw `invalid value ${JSON.stringify(raw)} for setting "${name}": expected a non-negative integer`;
  }
  return Number(raw.trim());
}

function enumerate(ctx, cursor) {
  const count = settingInt(ctx, 'count', 10);
  const pageSize = settingInt(ctx, 'page_size', 100);
  if (pageSize === 0) throw 'setting "page_size" must be at least 1, got 0';
  const ttl = settingInt(ctx, 'ttl', undefined);
  // The cursor is the offset of the next key; undefined on the first call.
  let start = 0;
  if (cursor !== undefined) {
    if (!/^[0-9]+$/.test(cursor)) throw `invalid cursor ${JSON.stringify(cursor)}: expected a key offset`;
    start = Number(cursor);
  }
  if (start === 0) log('debug', `enumerating ${count} keys, ${pageSize} per page`);
  const end = Math.min(count, start + pageSize);
  const keys = [];
  for (let offset = start; offset < end; offset++) {
    const n = offset + 1;
    keys.push({
      key: `${PREFIX}${n}`,
      priority: n === 1 ? 'high' : 'normal',
      ttlSeconds: ttl,
      tags: ['items'],
      arg: String(n),
    });
  }
  return { keys: packKeys(keys), cursor: end < count ? String(end) : undefined };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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

/** One key's value: `{ tag: 'ok', val: bytes }` or `{ tag: 'err', val: warmError }`. */
function produceOne(key, arg) {
  if (arg === undefined || !/^[0-9]+$/.test(arg)) {
    return { tag: 'err', val: { tag: 'fail', val: `${key}: no item number in arg` } };
  }
  const n = Number(arg);
  // Keys in sorted order: byte-identical to serde_json's output.
  return { tag: 'ok', val: encoder.encode(JSON.stringify({ id: n, title: `Item ${n}` })) };
}

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

/** The `preheat:plugin/warmer` export. */
export const warmer = { enumerate, produce };
