//! Sharded runs: one run split across `count` workers, each warming the keys
//! of its share. Which shard a key belongs to is `xxh3_64(key) % count` (the
//! key as the plugin lists it, before the format's storage layout): stable
//! across hosts, versions and runs, so the shards of a run split the keys
//! between them without talking to each other, every key in exactly one.

use crate::runtime::Shard;
use anyhow::{bail, Context, Result};

/// Most shards a run can be split into.
pub const MAX_SHARDS: u32 = 10_000;

/// Longest run group name (`--group`, `PREHEAT_RUN_GROUP`), in bytes.
pub const MAX_GROUP_BYTES: usize = 128;

/// The shard `key` belongs to, of `count`.
pub fn shard_of(key: &str, count: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % u64::from(count.max(1))) as u32
}

/// Whether `key` falls in `shard`'s share.
pub fn owns(shard: Shard, key: &str) -> bool {
    shard_of(key, shard.count) == shard.index
}

/// Parses `I/N` (0-based index `I` of `N` shards), as `--shard` and
/// `PREHEAT_SHARD` give it.
pub fn parse_shard(text: &str) -> Result<Shard> {
    let (index, count) = text
        .trim()
        .split_once('/')
        .with_context(|| format!("shard {text:?} is not INDEX/COUNT: write e.g. 0/3 for the first of three shards"))?;
    let index: u32 = index
        .trim()
        .parse()
        .with_context(|| format!("shard {text:?}: the index {index:?} is not a whole number"))?;
    let count: u32 = count
        .trim()
        .parse()
        .with_context(|| format!("shard {text:?}: the count {count:?} is not a whole number"))?;
    shard(index, count)
}

/// Checks shard `index` of `count`: 0-based, at most [`MAX_SHARDS`].
pub fn shard(index: u32, count: u32) -> Result<Shard> {
    if count == 0 || count > MAX_SHARDS {
        bail!("a run is split into 1 to {MAX_SHARDS} shards, not {count}");
    }
    if index >= count {
        bail!(
            "shard {index}/{count} does not exist: shards are numbered from 0, so the last of {count} is {}/{count}",
            count - 1
        );
    }
    Ok(Shard { index, count })
}

/// Checks a run group name: what the shards of one run share, so the job
/// history shows them as one run (a release id, a Kubernetes Job's name).
pub fn check_group(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > MAX_GROUP_BYTES {
        bail!(
            "the run group {:?} must be 1 to {MAX_GROUP_BYTES} bytes",
            crate::report::clip(group, 40)
        );
    }
    if let Some(c) = group
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
    {
        bail!("the run group {group:?} holds {c:?}: use letters, digits and - _ . : / (e.g. a release id)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_falls_in_exactly_one_shard_and_the_shares_are_even() {
        for count in [1u32, 2, 3, 7, 16] {
            let mut sizes = vec![0u32; count as usize];
            for i in 0..30_000 {
                let key = format!("product:{i}");
                let owners: Vec<u32> = (0..count).filter(|&s| owns(shard(s, count).unwrap(), &key)).collect();
                assert_eq!(owners.len(), 1, "{key} of {count} shards: {owners:?}");
                sizes[owners[0] as usize] += 1;
            }
            let even = 30_000 / count;
            for size in sizes {
                assert!(
                    size.abs_diff(even) < even / 10 + 50,
                    "{count} shards: a share of {size}, not about {even}"
                );
            }
        }
    }

    #[test]
    fn the_shard_of_a_key_is_fixed_forever() {
        // XXH3-64 (seed 0) as specified, so other tools, and shards running
        // another preheat version, compute the same shares.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"a"), 0xe6c6_32b6_1e96_4e1f);
        assert_eq!(xxhash_rust::xxh3::xxh3_64("café".as_bytes()), 0x4c83_dbd5_f29d_367f);
        let shards: Vec<u32> = ["a", "user:1", "product:42", "café"]
            .iter()
            .map(|k| shard_of(k, 3))
            .collect();
        assert_eq!(shards, [1, 0, 0, 1]);
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn shard_flags_parse_or_say_what_is_wrong() {
        let s = parse_shard("1/3").unwrap();
        assert_eq!((s.index, s.count), (1, 3));
        let s = parse_shard(" 0 / 1 ").unwrap();
        assert_eq!((s.index, s.count), (0, 1));
        let err = |t: &str| format!("{:#}", parse_shard(t).unwrap_err());
        assert!(err("3/3").contains("the last of 3 is 2/3"), "{}", err("3/3"));
        assert!(err("1/0").contains("1 to 10000 shards"));
        assert!(err("1/10001").contains("not 10001"));
        assert!(err("2").contains("INDEX/COUNT"));
        assert!(err("-1/3").contains("\"-1\" is not a whole number"));
        assert!(err("a/b").contains("not a whole number"));
        check_group("release-2026.12.02_1").unwrap();
        check_group("job/warm-7f9c").unwrap();
        assert!(format!("{:#}", check_group("a b").unwrap_err()).contains("' '"));
        assert!(check_group("").is_err());
        assert!(check_group(&"g".repeat(MAX_GROUP_BYTES + 1)).is_err());
    }
}
