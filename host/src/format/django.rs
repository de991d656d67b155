//! Django: `django.core.cache.backends.redis.RedisCache` keys and values.
//!
//! - key: `KEY_PREFIX:VERSION:key` (`django.core.cache.backends.base.default_key_func`);
//! - value: `RedisSerializer.dumps`: an `int` is stored as its decimal text
//!   (redis-py encodes it), everything else is `pickle.dumps(obj, HIGHEST_PROTOCOL)`;
//!   the pickle here is protocol 5 without frames or memo, which `pickle.loads`
//!   reads the same (framing and memoizing are optional for the reader);
//! - expiry: the Redis TTL only (`SET … EX`).

use super::value::{integer, BigInt, DecodeBudget, Value, MAX_BIGINT_BYTES, MAX_DEPTH};
use super::{Decoded, FormatError};
use crate::config::DjangoFormat;

/// Most objects a pickle may push while it is parsed (what it builds from
/// them is bounded by [`DecodeBudget`]).
const MAX_NODES: usize = 1 << 20;

/// The stored key of a plugin's key.
pub fn key(config: &DjangoFormat, key: &str) -> String {
    format!("{}:{}:{key}", config.key_prefix, config.version)
}

/// The stored value bytes.
pub fn encode(value: &Value) -> Vec<u8> {
    match value {
        Value::Int(i) => i.to_string().into_bytes(),
        Value::BigInt(b) => b.to_decimal().into_bytes(),
        other => {
            let mut out = vec![0x80, 5];
            pickle(other, &mut out);
            out.push(b'.');
            out
        }
    }
}

fn pickle(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => match *i {
            0..=0xff => out.extend_from_slice(&[b'K', *i as u8]),
            0x100..=0xffff => {
                out.push(b'M');
                out.extend_from_slice(&(*i as u16).to_le_bytes());
            }
            i if i32::try_from(i).is_ok() => {
                out.push(b'J');
                out.extend_from_slice(&(i as i32).to_le_bytes());
            }
            i => long1(&BigInt::from_i128(i128::from(i)), out),
        },
        Value::BigInt(b) => long1(b, out),
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => sized(s.as_bytes(), 0x8c, b'X', out),
        Value::Bytes(b) => sized(b, b'C', b'B', out),
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for item in items {
                    pickle(item, out);
                }
                out.push(b'e');
            }
        }
        Value::Map(entries) => {
            out.push(b'}');
            if !entries.is_empty() {
                out.push(b'(');
                for (k, v) in entries {
                    sized(k.as_bytes(), 0x8c, b'X', out);
                    pickle(v, out);
                }
                out.push(b'u');
            }
        }
    }
}

/// SHORT_ (1-byte length) or 4-byte-length opcode + the bytes.
fn sized(b: &[u8], short: u8, long: u8, out: &mut Vec<u8>) {
    if b.len() < 256 {
        out.extend_from_slice(&[short, b.len() as u8]);
    } else {
        out.push(long);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(b);
}

/// LONG1 / LONG4: little-endian two's complement, as `pickle.encode_long`.
fn long1(b: &BigInt, out: &mut Vec<u8>) {
    let mut bytes = b.magnitude.clone();
    if b.negative {
        // Two's complement of the magnitude.
        let mut carry = true;
        for byte in bytes.iter_mut() {
            let (v, c) = (!*byte).overflowing_add(u8::from(carry));
            *byte = v;
            carry = c;
        }
        if bytes.last().is_some_and(|&x| x & 0x80 == 0) {
            bytes.push(0xff);
        }
        // Drop redundant sign bytes: 0xff followed by a byte with the top bit set.
        while bytes.len() > 1 && bytes[bytes.len() - 1] == 0xff && bytes[bytes.len() - 2] & 0x80 != 0 {
            bytes.pop();
        }
    } else if bytes.last().is_some_and(|&x| x & 0x80 != 0) {
        bytes.push(0);
    }
    if bytes.len() < 256 {
        out.extend_from_slice(&[0x8a, bytes.len() as u8]);
    } else {
        out.push(0x8b);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&bytes);
}

/// Reads a stored value as `RedisSerializer.loads`: an integer's text, else a pickle.
pub fn decode(bytes: &[u8]) -> Result<Decoded, FormatError> {
    if let Some(n) = python_int(bytes) {
        return Ok(Decoded {
            value: n,
            expires_at: None,
            detected: "django (raw int)".into(),
        });
    }
    Ok(Decoded {
        value: unpickle(bytes)?,
        expires_at: None,
        detected: "django pickle".into(),
    })
}

/// `int(data)` for the decimal forms Django stores.
fn python_int(bytes: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    BigInt::from_decimal(text).map(integer)
}

/// One pickled object: a value, or a container built in place (lists and dicts
/// are filled after they are pushed, and the memo may refer to them).
enum Node {
    Leaf(Value),
    Mark,
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
}

/// `pickle.loads` of JSON-like objects (None, bool, int, float, str, bytes, list, tuple, dict).
fn unpickle(bytes: &[u8]) -> Result<Value, FormatError> {
    let bad = |what: String| FormatError::new(format!("not a pickle of a JSON-like value: {what}"));
    let mut nodes: Vec<Node> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut memo: std::collections::HashMap<u64, usize> = Default::default();
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], FormatError> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("cut short".into()))?;
        let s = &bytes[*pos..end];
        *pos = end;
        Ok(s)
    };
    let u32le = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let push = |nodes: &mut Vec<Node>, stack: &mut Vec<usize>, n: Node| -> Result<(), FormatError> {
        if nodes.len() >= MAX_NODES {
            return Err(FormatError::new(format!("pickle holds more than {MAX_NODES} objects")));
        }
        nodes.push(n);
        stack.push(nodes.len() - 1);
        Ok(())
    };
    let leaf = |v: Value| Node::Leaf(v);
    loop {
        let op = *take(&mut pos, 1)?.first().expect("one byte");
        match op {
            0x80 => {
                take(&mut pos, 1)?;
            }
            0x95 => {
                take(&mut pos, 8)?;
            }
            b'.' => break,
            b'N' => push(&mut nodes, &mut stack, leaf(Value::Null))?,
            0x88 => push(&mut nodes, &mut stack, leaf(Value::Bool(true)))?,
            0x89 => push(&mut nodes, &mut stack, leaf(Value::Bool(false)))?,
            b'K' => {
                let v = take(&mut pos, 1)?[0];
                push(&mut nodes, &mut stack, leaf(Value::Int(i64::from(v))))?
            }
            b'M' => {
                let b = take(&mut pos, 2)?;
                push(
                    &mut nodes,
                    &mut stack,
                    leaf(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]])))),
                )?
            }
            b'J' => {
                let b = take(&mut pos, 4)?;
                let v = i32::from_le_bytes(b.try_into().expect("4 bytes"));
                push(&mut nodes, &mut stack, leaf(Value::Int(i64::from(v))))?
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    take(&mut pos, 1)?[0] as usize
                } else {
                    u32le(take(&mut pos, 4)?)
                };
                if n > MAX_BIGINT_BYTES {
                    return Err(FormatError::new(format!(
                        "a pickled int of {n} bytes, over the {MAX_BIGINT_BYTES}-byte limit"
                    )));
                }
                let b = take(&mut pos, n)?;
                push(&mut nodes, &mut stack, leaf(integer(from_twos_complement(b))))?
            }
            b'G' => {
                let b = take(&mut pos, 8)?;
                push(
                    &mut nodes,
                    &mut stack,
                    leaf(Value::Float(f64::from_be_bytes(b.try_into().expect("8 bytes")))),
                )?
            }
            0x8c | b'X' | 0x8d | b'C' | b'B' | 0x8e => {
                let n = match op {
                    0x8c | b'C' => take(&mut pos, 1)?[0] as usize,
                    b'X' | b'B' => u32le(take(&mut pos, 4)?),
                    _ => {
                        let b = take(&mut pos, 8)?;
                        usize::try_from(u64::from_le_bytes(b.try_into().expect("8 bytes")))
                            .map_err(|_| bad("length".into()))?
                    }
                };
                let b = take(&mut pos, n)?.to_vec();
                let v = if matches!(op, 0x8c | b'X' | 0x8d) {
                    Value::Str(String::from_utf8(b).map_err(|_| bad("str is not UTF-8".into()))?)
                } else {
                    Value::Bytes(b)
                };
                push(&mut nodes, &mut stack, leaf(v))?
            }
            b']' | b')' => push(&mut nodes, &mut stack, Node::List(Vec::new()))?,
            b'}' => push(&mut nodes, &mut stack, Node::Dict(Vec::new()))?,
            b'(' => push(&mut nodes, &mut stack, Node::Mark)?,
            b'e' | b'u' | b't' | b'a' | b's' | 0x85 | 0x86 | 0x87 => {
                let items: Vec<usize> = match op {
                    b'a' => vec![stack.pop().ok_or_else(|| bad("empty stack".into()))?],
                    b's' => {
                        let v = stack.pop().ok_or_else(|| bad("empty stack".into()))?;
                        let k = stack.pop().ok_or_else(|| bad("empty stack".into()))?;
                        vec![k, v]
                    }
                    0x85..=0x87 => {
                        let n = usize::from(op - 0x84);
                        if stack.len() < n {
                            return Err(bad("empty stack".into()));
                        }
                        stack.split_off(stack.len() - n)
                    }
                    _ => {
                        let mark = stack
                            .iter()
                            .rposition(|&i| matches!(nodes[i], Node::Mark))
                            .ok_or_else(|| bad("no MARK".into()))?;
                        let items = stack.split_off(mark + 1);
                        stack.pop();
                        items
                    }
                };
                match op {
                    b't' | 0x85..=0x87 => push(&mut nodes, &mut stack, Node::List(items))?,
                    _ => {
                        let target = *stack.last().ok_or_else(|| bad("nothing to append to".into()))?;
                        match (&mut nodes[target], op) {
                            (Node::List(l), b'e' | b'a') => l.extend(items),
                            (Node::Dict(d), b'u' | b's') => {
                                if !items.len().is_multiple_of(2) {
                                    return Err(bad("odd SETITEMS".into()));
                                }
                                d.extend(items.chunks(2).map(|c| (c[0], c[1])));
                            }
                            _ => return Err(bad("append to a non-container".into())),
                        }
                    }
                }
            }
            0x94 | b'q' | b'r' => {
                let id = match op {
                    0x94 => memo.len() as u64,
                    b'q' => u64::from(take(&mut pos, 1)?[0]),
                    _ => u32le(take(&mut pos, 4)?) as u64,
                };
                let top = *stack.last().ok_or_else(|| bad("MEMOIZE on an empty stack".into()))?;
                memo.insert(id, top);
            }
            b'h' | b'j' => {
                let id = if op == b'h' {
                    u64::from(take(&mut pos, 1)?[0])
                } else {
                    u32le(take(&mut pos, 4)?) as u64
                };
                let node = *memo.get(&id).ok_or_else(|| bad(format!("memo {id} unknown")))?;
                stack.push(node);
            }
            other => {
                return Err(bad(format!(
                    "opcode {other:#04x} (objects, sets and other Python types cannot be shown as JSON)"
                )))
            }
        }
    }
    let root = match stack.as_slice() {
        [root] => *root,
        _ => return Err(bad("the stack does not end with one value".into())),
    };
    build(&nodes, root, 0, &mut DecodeBudget::new("pickle"))
}

fn build(nodes: &[Node], i: usize, depth: usize, budget: &mut DecodeBudget) -> Result<Value, FormatError> {
    if depth > MAX_DEPTH {
        return Err(FormatError::new(format!(
            "pickle nests deeper than {MAX_DEPTH} levels or refers to itself"
        )));
    }
    Ok(match &nodes[i] {
        Node::Leaf(v) => {
            budget.charge_node(v)?;
            v.clone()
        }
        Node::Mark => return Err(FormatError::new("pickle leaves a MARK on the stack")),
        Node::List(items) => {
            budget.charge_node(&Value::Null)?;
            Value::List(
                items
                    .iter()
                    .map(|&j| build(nodes, j, depth + 1, budget))
                    .collect::<Result<_, _>>()?,
            )
        }
        Node::Dict(entries) => {
            budget.charge_node(&Value::Null)?;
            let mut out = Vec::with_capacity(entries.len());
            for &(k, v) in entries {
                let key = match build(nodes, k, depth + 1, budget)? {
                    Value::Str(s) => s,
                    Value::Int(n) => n.to_string(),
                    other => {
                        return Err(FormatError::new(format!(
                            "a dict key JSON cannot hold: {}",
                            other.to_json()
                        )))
                    }
                };
                out.push((key, build(nodes, v, depth + 1, budget)?));
            }
            Value::Map(out)
        }
    })
}

fn from_twos_complement(b: &[u8]) -> BigInt {
    let negative = b.last().is_some_and(|&x| x & 0x80 != 0);
    let mut magnitude = b.to_vec();
    if negative {
        let mut borrow = true;
        for byte in magnitude.iter_mut() {
            let (v, c) = byte.overflowing_sub(u8::from(borrow));
            *byte = !v;
            borrow = c;
        }
    }
    BigInt { negative, magnitude }.normalized()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefix_version_key() {
        let c = DjangoFormat {
            key_prefix: String::new(),
            version: 1,
        };
        assert_eq!(key(&c, "home.top"), ":1:home.top");
        let c = DjangoFormat {
            key_prefix: "shop".into(),
            version: 3,
        };
        assert_eq!(key(&c, "home.top"), "shop:3:home.top");
    }

    #[test]
    fn integers_are_raw_everything_else_is_pickled() {
        assert_eq!(encode(&Value::Int(-42)), b"-42");
        assert_eq!(
            encode(&Value::BigInt(BigInt::from_decimal("99999999999999999999").unwrap())),
            b"99999999999999999999"
        );
        assert_eq!(
            encode(&Value::Bool(true)),
            b"\x80\x05\x88.",
            "bool is not int for Django"
        );
        // pickle.loads(...) == {'a': [1, 2.5, None], 'b': 'é'}
        let v = Value::Map(vec![
            (
                "a".into(),
                Value::List(vec![Value::Int(1), Value::Float(2.5), Value::Null]),
            ),
            ("b".into(), Value::Str("é".into())),
        ]);
        let bytes = encode(&v);
        assert_eq!(
            bytes,
            b"\x80\x05}(\x8c\x01a](K\x01G\x40\x04\x00\x00\x00\x00\x00\x00Ne\x8c\x01b\x8c\x02\xc3\xa9u."
        );
        assert_eq!(decode(&bytes).unwrap().value, v);
    }

    #[test]
    fn longs_use_twos_complement_like_encode_long() {
        // pickle.encode_long: 255 → b'\xff\x00', -256 → b'\x00\xff', -128 → b'\x80', 2**63 → 9 bytes.
        let enc = |i: i128| {
            let mut out = Vec::new();
            long1(&BigInt::from_i128(i), &mut out);
            out
        };
        assert_eq!(enc(255), b"\x8a\x02\xff\x00");
        assert_eq!(enc(-256), b"\x8a\x02\x00\xff");
        assert_eq!(enc(-128), b"\x8a\x01\x80");
        assert_eq!(enc(1 << 63), b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00");
        for i in [255i128, -256, -128, 1 << 63, -(1 << 70), 5_000_000_000] {
            assert_eq!(from_twos_complement(&enc(i)[2..]), BigInt::from_i128(i));
        }
    }

    #[test]
    fn decode_reads_what_python_writes() {
        // pickle.dumps({'k': [1, 'x'], 'n': None}, 5): framed and memoized.
        let py =
            b"\x80\x05\x95\x18\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01k\x94]\x94(K\x01\x8c\x01x\x94e\x8c\x01n\x94Nu.";
        assert_eq!(
            decode(py).unwrap().value,
            Value::Map(vec![
                ("k".into(), Value::List(vec![Value::Int(1), Value::Str("x".into())])),
                ("n".into(), Value::Null),
            ])
        );
        assert_eq!(decode(b"17").unwrap().value, Value::Int(17));
        // pickle.dumps(set()) and objects are refused by name of the opcode.
        assert!(decode(b"\x80\x05\x8f\x94.").unwrap_err().to_string().contains("0x8f"));
        // l = []; l.append(l): a cycle is refused, not followed forever.
        let cycle = b"\x80\x05]\x94h\x00a.";
        assert!(decode(cycle).unwrap_err().to_string().contains("refers to itself"));
    }

    #[test]
    fn a_pickled_int_over_the_byte_limit_is_refused() {
        // protocol 5, LONG4 of n bytes, STOP.
        let long4 = |n: u32| {
            let mut b = vec![0x80, 5, 0x8b];
            b.extend_from_slice(&n.to_le_bytes());
            b.extend(std::iter::repeat_n(0x11, n as usize));
            b.push(b'.');
            b
        };
        assert!(decode(&long4(1786)).is_ok());
        let err = decode(&long4(1787)).err().unwrap().to_string();
        assert!(
            err.contains("pickled int of 1787 bytes, over the 1786-byte limit"),
            "{err}"
        );
    }

    #[test]
    fn memo_references_cannot_expand_a_small_pickle_past_the_decode_budget() {
        // A 1 MiB string, memoized, then a list of 300 references to it:
        // 1 MiB stored, 300 MiB built.
        let pickle = |refs: usize| {
            let mut b = vec![0x80, 5, b']', b'(', b'X'];
            b.extend_from_slice(&(1u32 << 20).to_le_bytes());
            b.extend(std::iter::repeat_n(b'x', 1 << 20));
            b.push(0x94);
            for _ in 0..refs {
                b.extend_from_slice(&[b'h', 0]);
            }
            b.extend_from_slice(b"e.");
            b
        };
        let err = decode(&pickle(300)).err().unwrap().to_string();
        assert!(err.contains("pickle data expands to more than 256 MiB"), "{err}");
        // With 199 references it fits (200 MiB).
        let small = pickle(199);
        assert!(matches!(decode(&small).unwrap().value, Value::List(l) if l.len() == 200));
    }
}
