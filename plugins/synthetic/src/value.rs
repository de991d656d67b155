//! The synthetic values, in plain Rust with no guest dependencies, so the
//! host's benchmark (`host/benches/suite/native.rs`) can include this very file
//! for its native producer and build byte-identical values.

/// 64 printable characters; filler bytes index into it with 6 bits.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The value of key `index`: `{index}:` then filler, exactly `size` bytes.
pub fn value(index: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    value_into(index, size, &mut out);
    out
}

/// Appends the value of key `index` to `out`.
pub fn value_into(index: u64, size: usize, out: &mut Vec<u8>) {
    if size == 0 {
        return;
    }
    out.reserve(size);
    let end = out.len() + size;
    let mut buf = [0u8; 20];
    let digits = decimal(index, &mut buf);
    out.extend_from_slice(&digits[..digits.len().min(size)]);
    if out.len() < end {
        out.push(b':');
    }
    // The filler is written in place, eight characters per store of a whole
    // word (a fixed-size copy, which WebAssembly does as one `i64.store`).
    let filler = out.len();
    out.resize(end, 0);
    let mut state = index ^ 0x5EED_CAFE_F00D_D00D;
    let mut chunks = out[filler..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&printable(splitmix64(&mut state)).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let word = printable(splitmix64(&mut state)).to_le_bytes();
        rest.copy_from_slice(&word[..rest.len()]);
    }
}

/// Each byte of `random` replaced by the character its low 6 bits pick.
fn printable(random: u64) -> u64 {
    (0..8).fold(0, |word, i| {
        let byte = (random >> (8 * i)) & 63;
        word | u64::from(ALPHABET[byte as usize]) << (8 * i)
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the decimal digits of `n` at the end of `buf`, without going
/// through `core::fmt` or the allocator, and returns them.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}
