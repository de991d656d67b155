//! Key → server, exactly as the application's client computes it (facts
//! from libmemcached 1.1 `hash.cc`/`hosts.cc`/libhashkit and Dalli 3.0 `ring.rb`):
//!
//! - `modula` (libmemcached's default): `one_at_a_time(key) % servers`, over
//!   the bytes as C `char`s, which are signed on x86-64 and arm64 Linux
//!   (a byte ≥ 0x80 adds as a negative number); one server takes every key.
//! - `ketama` (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`, what php-memcached's
//!   `OPT_LIBKETAMA_COMPATIBLE` sets): per server
//!   `floor(weight / total * 160 / 4 * servers + 1e-10) * 4` points in
//!   single-precision floats, four from each MD5 of `"host:port-i"` (`"host-i"`
//!   on port 11211), each point the little-endian `u32` at offset 0, 4, 8, 12;
//!   a key goes to the first point ≥ MD5(key)'s first little-endian `u32`,
//!   wrapping to the first point.
//! - `dalli`: per server `floor(servers * 160 * weight / total)` points, the
//!   first 8 hex digits of SHA1(`"host:port:i"`); a key goes to the last
//!   point ≤ CRC32(key), wrapping to the last point; one server takes every key.

use crate::config::{Distribution, MemcachedServer};
use md5::{Digest as _, Md5};
use sha1::Sha1;

/// A pool's mapping, built once.
#[derive(Debug, Clone)]
pub struct Ring {
    distribution: Distribution,
    servers: usize,
    /// Points sorted by value (ketama, dalli): (point, server index).
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// The mapping of `servers` (in the application's order) under `distribution`.
    pub fn new(distribution: Distribution, servers: &[MemcachedServer]) -> Ring {
        let n = servers.len();
        let mut points = Vec::new();
        match distribution {
            Distribution::Modula => {}
            Distribution::Ketama => {
                let total: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
                for (index, server) in servers.iter().enumerate() {
                    // The same single-precision steps as libmemcached, so a
                    // rounding below an integer floors the same way.
                    let pct = server.weight as f32 / total as f32;
                    let count = ((pct * 160.0 / 4.0 * n as f32 + 0.000_000_000_1_f32).floor() * 4.0) as u32;
                    for i in 0..count / 4 {
                        let name = if server.port == 11211 {
                            format!("{}-{i}", server.host)
                        } else {
                            format!("{}:{}-{i}", server.host, server.port)
                        };
                        let digest = Md5::digest(name.as_bytes());
                        for x in 0..4 {
                            let b = &digest[x * 4..x * 4 + 4];
                            points.push((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), index));
                        }
                    }
                }
            }
            Distribution::Dalli if n > 1 => {
                let total: f64 = servers.iter().map(|s| f64::from(s.weight)).sum();
                for (index, server) in servers.iter().enumerate() {
                    let count = ((n as u64 * 160 * u64::from(server.weight)) as f64 / total).floor() as u64;
                    for i in 0..count {
                        let digest = Sha1::digest(format!("{}:{}:{i}", server.host, server.port).as_bytes());
                        points.push((u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]), index));
                    }
                }
            }
            Distribution::Dalli => {}
        }
        // Stable: equal points keep server order (a tie is a 1 in 2^32 event).
        points.sort_by_key(|&(point, _)| point);
        Ring {
            distribution,
            servers: n,
            points,
        }
    }

    /// The index of the server that holds `key`.
    pub fn server_of(&self, key: &[u8]) -> usize {
        if self.servers <= 1 {
            return 0;
        }
        match self.distribution {
            Distribution::Modula => (one_at_a_time(key) % self.servers as u32) as usize,
            Distribution::Ketama => {
                let d = Md5::digest(key);
                let hash = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                let first_at_or_above = self.points.partition_point(|&(p, _)| p < hash);
                self.points.get(first_at_or_above).unwrap_or(&self.points[0]).1
            }
            Distribution::Dalli => {
                let hash = crc32fast::hash(key);
                let above = self.points.partition_point(|&(p, _)| p <= hash);
                match above {
                    0 => self.points[self.points.len() - 1].1,
                    i => self.points[i - 1].1,
                }
            }
        }
    }
}

/// libhashkit's `hashkit_one_at_a_time`, over signed `char`s.
fn one_at_a_time(key: &[u8]) -> u32 {
    let mut value: u32 = 0;
    for &b in key {
        value = value.wrapping_add(b as i8 as i32 as u32);
        value = value.wrapping_add(value << 10);
        value ^= value >> 6;
    }
    value = value.wrapping_add(value << 3);
    value ^= value >> 11;
    value.wrapping_add(value << 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(spec: &[&str]) -> Vec<MemcachedServer> {
        spec.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn one_at_a_time_matches_libhashkit() {
        // Jenkins' one-at-a-time of "a" is 0xca2e9442 (unsigned and signed
        // chars agree below 0x80).
        assert_eq!(one_at_a_time(b"a"), 0xca2e_9442);
        assert_eq!(one_at_a_time(b""), 0);
        // "é" (C3 A9) as signed chars; as unsigned bytes it would be 0xae8600ef.
        // The e2e tests check warmed keys against php-memcached itself.
        assert_eq!(one_at_a_time("é".as_bytes()), 0x0191_48ae);
    }

    #[test]
    fn point_counts_follow_the_clients() {
        let three = pool(&["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"]);
        let ketama = Ring::new(Distribution::Ketama, &three);
        assert_eq!(ketama.points.len(), 3 * 160);
        let dalli = Ring::new(Distribution::Dalli, &three);
        assert_eq!(dalli.points.len(), 3 * 160);
        // Weights 1:3 — ketama floor(0.25*40*2)*4 = 80 and 240; Dalli 2*160*w/4.
        let weighted = pool(&["a:1:1", "b:2:3"]);
        let count = |ring: &Ring, i| ring.points.iter().filter(|p| p.1 == i).count();
        let ketama = Ring::new(Distribution::Ketama, &weighted);
        assert_eq!((count(&ketama, 0), count(&ketama, 1)), (80, 240));
        let dalli = Ring::new(Distribution::Dalli, &weighted);
        assert_eq!((count(&dalli, 0), count(&dalli, 1)), (80, 240));
    }

    #[test]
    fn every_server_takes_keys_and_one_server_takes_all() {
        let three = pool(&["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]);
        for d in [Distribution::Modula, Distribution::Ketama, Distribution::Dalli] {
            let ring = Ring::new(d, &three);
            let mut seen = [0usize; 3];
            for i in 0..3000 {
                seen[ring.server_of(format!("key:{i}").as_bytes())] += 1;
            }
            assert!(seen.iter().all(|&n| n > 500), "{d:?}: {seen:?}");
            let one = Ring::new(d, &three[..1]);
            assert_eq!(one.server_of(b"anything"), 0);
        }
    }
}
