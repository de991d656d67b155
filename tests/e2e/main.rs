//! End-to-end tests: the real `preheat` binary, real WebAssembly components
//! built from plugins/ and tests/fixtures/, and redis-servers started here on
//! free loopback ports, and the applications' own frameworks reading what was
//! warmed (tests/readers/).

mod backends;
mod bench_smoke;
mod cache_cli;
mod cli;
mod cluster;
mod dashboard;
mod data;
mod frameworks;
mod guests;
mod jobs;
mod memcached;
mod sandbox;
mod sandbox_bytes;
mod sandbox_limits;
mod sandbox_sql;
mod serve;
mod serve_contract;
mod serve_hostile;
mod shards;
mod simulate;
mod support;
mod tls;
mod usage_warming;
mod warming;
mod watch;
