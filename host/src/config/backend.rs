//! `[backend]`: where values go. `kind` picks a table of its own
//! ([`Target`]: the fields of that kind and no other), `format` lays values
//! out for the application beside it, and [`Capabilities`] says what each
//! kind can do, so that validation refuses what a kind cannot honour.
//!
//! The table is read from the parsed document with its spans
//! ([`BackendConfig::from_toml`]): a field of another kind, or of none, is
//! refused at its own line and column, naming the kind it belongs to.

use super::{ByteSize, FormatConfig, WritePolicy};
use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

/// Which backend kind to write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// A Redis server (`redis://` or `rediss://` URL).
    Redis,
    /// An in-process, TTL-aware, size-bounded map.
    Memory,
    /// A SQL cache table (Laravel's database cache store layout), SQLite or PostgreSQL.
    Sql,
    /// A pool of memcached servers, keys spread the way the application's client spreads them.
    Memcached,
    /// A Redis Cluster, found from seed nodes (`redis://` or `rediss://` URLs).
    RedisCluster,
}

/// Every kind, in the order errors list them.
const KINDS: [BackendKind; 5] = [
    BackendKind::Memory,
    BackendKind::Redis,
    BackendKind::Sql,
    BackendKind::Memcached,
    BackendKind::RedisCluster,
];

impl BackendKind {
    /// The kind as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Redis => "redis",
            BackendKind::Memory => "memory",
            BackendKind::Sql => "sql",
            BackendKind::Memcached => "memcached",
            BackendKind::RedisCluster => "redis-cluster",
        }
    }

    /// What a backend of this kind can do.
    pub fn capabilities(self) -> Capabilities {
        match self {
            BackendKind::Redis => Capabilities {
                formats: &["raw", "rails", "laravel", "django"],
                ttl_introspection: true,
                server_stats: true,
                key_events: true,
                event_stream: true,
            },
            BackendKind::Memory => Capabilities {
                formats: &["raw", "rails", "laravel", "django"],
                ttl_introspection: true,
                server_stats: false,
                key_events: false,
                event_stream: false,
            },
            BackendKind::Sql => Capabilities {
                formats: &["raw", "laravel"],
                ttl_introspection: true,
                server_stats: false,
                key_events: false,
                event_stream: false,
            },
            // `mg <key> t` reads the TTL; `stats` has get_hits/get_misses.
            BackendKind::Memcached => Capabilities {
                formats: &["raw", "rails", "laravel"],
                ttl_introspection: true,
                server_stats: true,
                key_events: false,
                event_stream: false,
            },
            // Stats summed over the masters, key events subscribed on every
            // master, the stream read on the node that owns its key.
            BackendKind::RedisCluster => Capabilities {
                formats: &["raw", "rails", "laravel", "django"],
                ttl_introspection: true,
                server_stats: true,
                key_events: true,
                event_stream: true,
            },
        }
    }

    /// The fields this kind's table takes (besides `kind` and `format`).
    fn fields(self) -> &'static [&'static str] {
        match self {
            BackendKind::Redis => fields_of::<RedisTarget>(),
            BackendKind::Memory => fields_of::<MemoryTarget>(),
            BackendKind::Sql => fields_of::<SqlTarget>(),
            BackendKind::Memcached => fields_of::<MemcachedTarget>(),
            BackendKind::RedisCluster => RedisClusterTarget::fields(),
        }
    }
}

/// What a kind of backend can do; config validation refuses a setting that
/// needs what the backend lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The value formats (`format = { kind = … }`) it can hold.
    pub formats: &'static [&'static str],
    /// A key's remaining TTL can be read: `refresh-if-ttl-below`, `cache ttl`.
    pub ttl_introspection: bool,
    /// Server-wide hit and miss counters (`GET /cache/warming/stats`, the usage sampler).
    pub server_stats: bool,
    /// Notifications of expired and evicted keys (`[usage.keyspace]`).
    pub key_events: bool,
    /// A stream that usage events can be read from at the backend's URL (`[usage.stream]` without `url`).
    pub event_stream: bool,
}

impl Capabilities {
    /// Whether writes under `policy` can be honoured.
    pub fn supports(&self, policy: WritePolicy) -> bool {
        match policy {
            WritePolicy::IfMissing | WritePolicy::Always => true,
            WritePolicy::RefreshIfTtlBelow(_) => self.ttl_introspection,
        }
    }
}

/// `[backend]`: the target of one kind, and the value format.
#[derive(Debug, Clone, Default)]
pub struct BackendConfig {
    /// The kind's own settings.
    pub target: Target,
    /// How keys and values are laid out for the application that reads them.
    pub format: FormatConfig,
}

/// The settings of one backend kind (`kind = "…"` and the fields it takes).
#[derive(Debug, Clone)]
pub enum Target {
    /// `kind = "memory"`.
    Memory(MemoryTarget),
    /// `kind = "redis"`.
    Redis(RedisTarget),
    /// `kind = "sql"`.
    Sql(SqlTarget),
    /// `kind = "memcached"`.
    Memcached(MemcachedTarget),
    /// `kind = "redis-cluster"`.
    RedisCluster(RedisClusterTarget),
}

impl Default for Target {
    fn default() -> Self {
        Target::Memory(MemoryTarget::default())
    }
}

/// `kind = "memory"`: an in-process map.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryTarget {
    /// Size bound (keys + values).
    pub max_bytes: ByteSize,
}

impl Default for MemoryTarget {
    fn default() -> Self {
        MemoryTarget {
            max_bytes: ByteSize(256 << 20),
        }
    }
}

/// `kind = "redis"`: one Redis server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisTarget {
    /// `redis://[:password@]host:port/db` or `rediss://…` (required; `PREHEAT_REDIS_URL` sets it).
    pub url: Option<String>,
    /// How long to wait for a server reply before the write counts as failed.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// How long to wait for a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// PEM bundle of the CAs a `rediss://` server's certificate must be signed
    /// by, instead of the system trust store.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) shown to a server that asks for one;
    /// with `tls_key_file` (`rediss://`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file` (`rediss://`).
    pub tls_key_file: Option<PathBuf>,
}

impl Default for RedisTarget {
    fn default() -> Self {
        RedisTarget {
            url: None,
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `kind = "redis-cluster"`: a Redis Cluster. Its table is `urls` and the
/// fields of kind = "redis" but `url` (timeouts, TLS files), which reach
/// every node the same way.
#[derive(Debug, Clone, Default)]
pub struct RedisClusterTarget {
    /// Seed nodes, `redis://[user:password@]host:port` or `rediss://…`
    /// (required): the rest of the cluster is found from them. One scheme,
    /// one set of credentials and database 0 for all.
    pub urls: Vec<String>,
    /// How every node is reached: the timeouts and TLS files of kind =
    /// "redis" (its `url` is unset; node addresses come from the cluster).
    pub nodes: RedisTarget,
}

/// The one field a cluster has that a single server has not.
const URLS: &str = "urls";

impl RedisClusterTarget {
    /// `urls`, then the fields of [`RedisTarget`] but `url`.
    fn fields() -> &'static [&'static str] {
        static FIELDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        FIELDS.get_or_init(|| {
            std::iter::once(URLS)
                .chain(fields_of::<RedisTarget>().iter().copied().filter(|f| *f != "url"))
                .collect()
        })
    }

    /// Reads the table (its fields already checked against [`Self::fields`]):
    /// `urls`, then the rest as a [`RedisTarget`]; `at` puts a table where
    /// the whole one was, so errors point into the file.
    fn from_table<'a>(
        mut table: toml::de::DeTable<'a>,
        at: impl Fn(toml::de::DeTable<'a>) -> ValueDeserializer<'a>,
    ) -> Result<Self, toml::de::Error> {
        /// `urls` alone, so an error in it points at its value.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Urls {
            #[serde(default)]
            urls: Vec<String>,
        }
        let mut head = toml::de::DeTable::new();
        if let Some((key, value)) = table.remove_entry(URLS) {
            head.insert(key, value);
        }
        let Urls { urls } = Urls::deserialize(at(head))?;
        let nodes = RedisTarget::deserialize(at(table))?;
        Ok(RedisClusterTarget { urls, nodes })
    }
}

/// `kind = "sql"`: a cache table in SQLite or PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlTarget {
    /// `sqlite://cache.db` or `postgres://user@host/db` (required).
    pub url: Option<String>,
    /// The cache table.
    pub table: String,
    /// Prefix prepended to every key (for the raw format; Laravel's comes from its format).
    pub key_prefix: String,
    /// Create the cache table when it does not exist.
    pub create_table: bool,
    /// How long to wait for a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for SqlTarget {
    fn default() -> Self {
        SqlTarget {
            url: None,
            table: "cache".into(),
            key_prefix: String::new(),
            create_table: false,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// `kind = "memcached"`: a pool of memcached servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemcachedTarget {
    /// The pool, in the order the application's client lists it (the order
    /// decides `modula`'s mapping): `"host:port"`, or `"host:port:weight"`.
    pub servers: Vec<MemcachedServer>,
    /// How keys map to servers: the application's client's scheme.
    pub distribution: Distribution,
    /// How long to wait for a connection to one server.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one server may take to answer a batch (or a read) before
    /// its keys count as failed.
    #[serde(with = "humantime_serde")]
    pub io_timeout: Duration,
    /// Most connections open to one server at once (batches in flight to it).
    pub max_connections_per_server: usize,
}

impl Default for MemcachedTarget {
    fn default() -> Self {
        MemcachedTarget {
            servers: Vec::new(),
            distribution: Distribution::Modula,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            max_connections_per_server: 8,
        }
    }
}

/// How a memcached client maps a key to a server of its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// libmemcached's default (php-memcached, pylibmc): one-at-a-time hash
    /// of the key, modulo the number of servers.
    Modula,
    /// libmemcached's weighted ketama (`Memcached::OPT_LIBKETAMA_COMPATIBLE`,
    /// pylibmc `ketama`): MD5 points per server, MD5 of the key.
    Ketama,
    /// Dalli's ring (Rails' `:mem_cache_store`): SHA1 points per server, CRC32 of the key.
    Dalli,
}

impl Distribution {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Modula => "modula",
            Distribution::Ketama => "ketama",
            Distribution::Dalli => "dalli",
        }
    }
}

/// One server of a memcached pool: `host:port[:weight]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedServer {
    /// The host as written: clients hash it as text, so `localhost` and
    /// `127.0.0.1` are different servers to them.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The relative share of keys under `ketama` and `dalli` (default 1).
    pub weight: u32,
}

impl MemcachedServer {
    /// `host:port`, as clients name the server.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for MemcachedServer {
    type Err = String;

    fn from_str(text: &str) -> Result<MemcachedServer, String> {
        let bad = |why: &str| {
            format!("memcached server {text:?}: {why}; write \"host:port\" or \"host:port:weight\" (e.g. \"10.0.0.5:11211\")")
        };
        let mut parts = text.split(':');
        let (host, port) = (parts.next().unwrap_or(""), parts.next());
        let weight = parts.next();
        if parts.next().is_some() {
            return Err(bad("too many `:` (IPv6 addresses are not supported)"));
        }
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the host is empty or holds spaces"));
        }
        let port = port
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p > 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        let weight = match weight {
            None => 1,
            Some(w) => w
                .parse::<u32>()
                .ok()
                .filter(|&w| w > 0)
                .ok_or_else(|| bad("the weight must be a whole number above 0"))?,
        };
        Ok(MemcachedServer {
            host: host.to_string(),
            port,
            weight,
        })
    }
}

impl<'de> Deserialize<'de> for MemcachedServer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Most servers in one memcached pool.
pub const MAX_MEMCACHED_SERVERS: usize = 256;

impl MemcachedTarget {
    /// Checks the pool: at least one server, none twice, bounds named.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err(
                "kind = \"memcached\" needs `servers = [\"host:port\", …]`, in the order the application lists them"
                    .into(),
            );
        }
        if self.servers.len() > MAX_MEMCACHED_SERVERS {
            return Err(format!(
                "servers lists {} memcached servers, over the {MAX_MEMCACHED_SERVERS} preheat connects to",
                self.servers.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.servers.iter().find(|s| !seen.insert(s.address())) {
            return Err(format!(
                "servers lists {} twice; list each server once",
                twice.address()
            ));
        }
        if self.distribution == Distribution::Modula && self.servers.iter().any(|s| s.weight != 1) {
            return Err("distribution = \"modula\" ignores weights (libmemcached maps hash % servers); remove the `:weight`s or use \"ketama\" or \"dalli\"".into());
        }
        if self.max_connections_per_server == 0 || self.max_connections_per_server > 1024 {
            return Err("max_connections_per_server must be between 1 and 1024".into());
        }
        for (name, t) in [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
        ] {
            if t.is_zero() {
                return Err(format!(
                    "{name} must be above 0 (a dead server would hold a batch forever)"
                ));
            }
        }
        Ok(())
    }
}

impl BackendConfig {
    /// The kind of backend.
    pub fn kind(&self) -> BackendKind {
        match self.target {
            Target::Memory(_) => BackendKind::Memory,
            Target::Redis(_) => BackendKind::Redis,
            Target::Sql(_) => BackendKind::Sql,
            Target::Memcached(_) => BackendKind::Memcached,
            Target::RedisCluster(_) => BackendKind::RedisCluster,
        }
    }

    /// The server or database URL (redis, sql; a cluster has several, `urls`).
    pub fn url(&self) -> Option<&str> {
        match &self.target {
            Target::Memory(_) | Target::Memcached(_) | Target::RedisCluster(_) => None,
            Target::Redis(r) => r.url.as_deref(),
            Target::Sql(s) => s.url.as_deref(),
        }
    }

    /// The Redis settings, when the backend is Redis: a server's, or those
    /// every node of a cluster is reached with (timeouts, TLS; no `url`).
    pub fn redis(&self) -> Option<&RedisTarget> {
        match &self.target {
            Target::Redis(r) => Some(r),
            Target::RedisCluster(c) => Some(&c.nodes),
            _ => None,
        }
    }

    /// What this backend can do.
    pub fn capabilities(&self) -> Capabilities {
        self.kind().capabilities()
    }

    /// Reads `[backend]` from the parsed document: `kind` (default
    /// "memory"), `format`, then the kind's own table. Every error carries
    /// the place in the file it is about.
    pub(super) fn from_toml(value: Spanned<DeValue<'_>>) -> Result<BackendConfig, toml::de::Error> {
        let span = value.span();
        let mut table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => {
                return Err(refuse(
                    Spanned::new(span, other),
                    format!("`backend` must be {NOT_A_TABLE}"),
                ))
            }
        };
        // `kind` and `format` first, read as a table of their own so that an
        // error in them points at its value.
        let mut head = toml::de::DeTable::new();
        for name in ["kind", "format"] {
            if let Some((key, value)) = table.remove_entry(name) {
                head.insert(key, value);
            }
        }
        let Head { kind, format } = Head::deserialize(ValueDeserializer::from(Spanned::new(
            span.clone(),
            DeValue::Table(head),
        )))?;
        if let Some((key, _)) = table
            .iter()
            .find(|(k, _)| !kind.fields().contains(&k.get_ref().as_ref()))
        {
            let field = key.get_ref().as_ref();
            let why = match KINDS.into_iter().find(|k| k.fields().contains(&field)) {
                Some(owner) => format!(
                    "`{field}` is a field of kind = \"{}\", and this backend is kind = \"{}\"",
                    owner.name(),
                    kind.name()
                ),
                None => format!("unknown field `{field}`"),
            };
            let message = format!(
                "{why}: kind = \"{}\" takes {}, and `format`; remove `{field}` or change `kind`",
                kind.name(),
                kind.fields().join(", ")
            );
            return Err(refuse(
                Spanned::new(key.span(), DeValue::String(key.get_ref().clone())),
                message,
            ));
        }
        let rest = |table| ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(table)));
        let target = match kind {
            BackendKind::Memory => Target::Memory(MemoryTarget::deserialize(rest(table))?),
            BackendKind::Redis => Target::Redis(RedisTarget::deserialize(rest(table))?),
            BackendKind::Sql => Target::Sql(SqlTarget::deserialize(rest(table))?),
            BackendKind::Memcached => Target::Memcached(MemcachedTarget::deserialize(rest(table))?),
            BackendKind::RedisCluster => Target::RedisCluster(RedisClusterTarget::from_table(table, rest)?),
        };
        Ok(BackendConfig { target, format })
    }
}

/// `kind` and `format` of `[backend]`.
#[derive(Deserialize)]
struct Head {
    #[serde(default = "memory")]
    kind: BackendKind,
    #[serde(default)]
    format: FormatConfig,
}

fn memory() -> BackendKind {
    BackendKind::Memory
}

/// What `[backend]` must be.
const NOT_A_TABLE: &str = "a table: `[backend]`, then `kind = \"redis\"` and its fields";

/// An error at `at`'s place in the file: a string there is refused with
/// `message`, anything else for not being a table.
fn refuse(at: Spanned<DeValue<'_>>, message: String) -> toml::de::Error {
    /// Refuses every value it is shown.
    struct Refuse(String);
    impl<'de> Visitor<'de> for Refuse {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(NOT_A_TABLE)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Err(E::custom(self.0))
        }
    }
    de::Deserializer::deserialize_any(ValueDeserializer::from(at), Refuse(message)).expect_err("Refuse accepts nothing")
}

/// The field names serde's derive gives `T`: what its `Deserialize` asks a
/// deserializer for (`deserialize_struct`'s `fields`), so each kind's list
/// is its struct's and is never written twice.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    /// The names asked for, or why none were.
    #[derive(Debug)]
    enum Asked {
        Fields(&'static [&'static str]),
        NotAStruct,
    }
    impl fmt::Display for Asked {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl std::error::Error for Asked {}
    impl de::Error for Asked {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Asked::NotAStruct
        }
    }
    /// Answers only `deserialize_struct`, with the names it was given.
    struct Ask;
    impl<'de> de::Deserializer<'de> for Ask {
        type Error = Asked;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Asked> {
            Err(Asked::NotAStruct)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Asked> {
            Err(Asked::Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Ask) {
        Err(Asked::Fields(fields)) => fields,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(text, Path::new("/etc/preheat/preheat.toml"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).and_then(|c| c.validate().map(|()| c)).unwrap_err())
    }

    #[test]
    fn a_field_of_another_kind_or_of_none_is_refused_at_its_line_and_column() {
        // `kind` after the fields: the whole table decides, not the order.
        let err = error(
            "[run]\nconcurrency = 4\n\n[backend]\nurl = \"redis://h:1/0\"\n  table = \"cache\"\nkind = \"redis\"\n",
        );
        for needle in [
            "line 6, column 3",
            "`table` is a field of kind = \"sql\", and this backend is kind = \"redis\"",
            "kind = \"redis\" takes url, response_timeout, connect_timeout, tls_ca_file, tls_cert_file, tls_key_file, and `format`",
            "remove `table` or change `kind`",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        for (table, needle) in [
            (
                "kind = \"sql\"\nurl = \"sqlite://c.db\"\ntls_ca_file = \"ca.pem\"",
                "`tls_ca_file` is a field of kind = \"redis\"",
            ),
            (
                "kind = \"redis\"\nurl = \"redis://h:1/0\"\nmax_bytes = \"1MiB\"",
                "`max_bytes` is a field of kind = \"memory\"",
            ),
            (
                "url = \"redis://h:1/0\"",
                "`url` is a field of kind = \"redis\", and this backend is kind = \"memory\"",
            ),
            (
                "kind = \"memory\"\nbogus = 1",
                "unknown field `bogus`: kind = \"memory\" takes max_bytes",
            ),
        ] {
            // The offending field is the table's last line.
            let at = format!("line {}, column 1", table.lines().count() + 1);
            let err = error(&format!("[backend]\n{table}\n"));
            assert!(err.contains(&at), "{table}: {at} not in {err}");
            assert!(err.contains(needle), "{table}: {needle:?} not in {err}");
        }
    }

    #[test]
    fn a_bad_value_in_the_table_points_at_the_value() {
        for (table, line, needle) in [
            (
                "kind = \"sql\"\nurl = \"sqlite://c.db\"\nconnect_timeout = \"3 parsecs\"",
                "line 4",
                "parsecs",
            ),
            ("kind = \"cassandra\"", "line 2", "unknown variant `cassandra`"),
            (
                "kind = \"redis\"\nurl = \"redis://h:1/0\"\nformat = { kind = \"rails\", bogus = 1 }",
                "line 4",
                "unknown field `bogus`",
            ),
            (
                // A `[backend.format]` table is pointed at by its header.
                "kind = \"redis\"\nurl = \"redis://h:1/0\"\n[backend.format]\nkind = \"django\"\nversion = \"two\"",
                "line 4",
                "string \"two\", expected i64",
            ),
        ] {
            let err = error(&format!("[backend]\n{table}\n"));
            assert!(err.contains(line) && err.contains(needle), "{table}: {err}");
        }
        assert!(error("backend = 3\n").contains("line 1"));
        // A string is refused with the same words (it was an empty message).
        assert!(error("backend = \"redis\"\n").contains("`backend` must be a table: `[backend]`"));
    }

    #[test]
    fn each_kind_reads_its_own_table() {
        let c = parse("[backend]\nmax_bytes = \"1MiB\"\n").unwrap();
        assert!(matches!(
            c.backend.target,
            Target::Memory(MemoryTarget {
                max_bytes: ByteSize(1048576)
            })
        ));
        let c = parse("[backend]\nkind = \"sql\"\nurl = \"sqlite://c.db\"\ntable = \"kv\"\nformat = { kind = \"laravel\", version = \"11\" }\n").unwrap();
        let Target::Sql(sql) = &c.backend.target else {
            panic!("{:?}", c.backend)
        };
        assert_eq!(
            (sql.url.as_deref(), sql.table.as_str()),
            (Some("sqlite:///etc/preheat/c.db"), "kv")
        );
        assert_eq!(c.backend.format.kind(), "laravel");
        // PREHEAT_REDIS_URL replaces the url of a Redis backend and keeps its other fields.
        let mut c = parse("[backend]\nkind = \"redis\"\nurl = \"redis://a:1/0\"\nresponse_timeout = \"9s\"\n").unwrap();
        c.apply_env(|k| (k == "PREHEAT_REDIS_URL").then(|| "redis://b:2/0".to_string()))
            .unwrap();
        let redis = c.backend.redis().unwrap();
        assert_eq!(
            (redis.url.as_deref(), redis.response_timeout),
            (Some("redis://b:2/0"), Duration::from_secs(9))
        );
    }

    #[test]
    fn validation_refuses_what_the_kind_cannot_do() {
        let sql = "[backend]\nkind = \"sql\"\nurl = \"sqlite://c.db\"\n";
        for (extra, needle) in [
            ("format = { kind = \"rails\" }", "a kind = \"sql\" backend cannot hold the rails format; it takes kind = \"raw\" or \"laravel\""),
            ("[usage.keyspace]\nenabled = true", "needs a backend that reports expired and evicted keys (kind = \"redis\" or \"redis-cluster\"); a kind = \"sql\" backend does not"),
            ("[usage.stream]\nname = \"events\"", "a kind = \"sql\" backend has no stream to read usage events from"),
        ] {
            let err = error(&format!("{sql}{extra}\n"));
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }

    #[test]
    fn each_kind_takes_its_struct_s_fields() {
        assert_eq!(BackendKind::Memory.fields(), ["max_bytes"]);
        assert_eq!(
            BackendKind::Redis.fields(),
            [
                "url",
                "response_timeout",
                "connect_timeout",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file"
            ]
        );
        assert_eq!(
            BackendKind::Sql.fields(),
            ["url", "table", "key_prefix", "create_table", "connect_timeout"]
        );
    }

    #[test]
    fn a_memcached_pool_reads_its_servers_in_order_with_weights() {
        let c = parse("[backend]\nkind = \"memcached\"\nservers = [\"10.0.0.2:11211\", \"cache-b:11212:3\"]\ndistribution = \"ketama\"\nio_timeout = \"1s\"\n").unwrap();
        c.validate().unwrap();
        let Target::Memcached(m) = &c.backend.target else {
            panic!("{:?}", c.backend)
        };
        assert_eq!(m.distribution, Distribution::Ketama);
        assert_eq!(m.io_timeout, Duration::from_secs(1));
        assert_eq!(m.max_connections_per_server, 8);
        let listed: Vec<(String, u32)> = m.servers.iter().map(|s| (s.address(), s.weight)).collect();
        assert_eq!(
            listed,
            [("10.0.0.2:11211".to_string(), 1), ("cache-b:11212".to_string(), 3)]
        );
        assert_eq!(
            BackendKind::Memcached.fields(),
            [
                "servers",
                "distribution",
                "connect_timeout",
                "io_timeout",
                "max_connections_per_server"
            ]
        );
    }

    #[test]
    fn a_memcached_pool_refuses_what_its_clients_would_not_map() {
        let mc = "[backend]\nkind = \"memcached\"\n";
        for (table, needle) in [
            ("servers = [\"10.0.0.2\"]", "line 3, column 11"),
            ("servers = [\"10.0.0.2\"]", "the port must be a number from 1 to 65535"),
            ("servers = [\"[::1]:11211\"]", "IPv6 addresses are not supported"),
            ("servers = [\"a:1:0\"]", "the weight must be a whole number above 0"),
            ("servers = []", "needs `servers = [\"host:port\", …]`"),
            ("servers = [\"a:1\", \"a:1\"]", "servers lists a:1 twice"),
            ("servers = [\"a:1:2\", \"b:1\"]", "distribution = \"modula\" ignores weights"),
            ("servers = [\"a:1\"]\ndistribution = \"consistent\"", "unknown variant `consistent`"),
            ("servers = [\"a:1\"]\nio_timeout = \"0s\"", "io_timeout must be above 0"),
            ("servers = [\"a:1\"]\nurl = \"redis://a:1/0\"", "`url` is a field of kind = \"redis\""),
            ("servers = [\"a:1\"]\nformat = { kind = \"django\" }", "cannot hold the django format"),
            (
                "servers = [\"a:1\"]\nformat = { kind = \"rails\" }",
                "cache_format_version = \"7.1\" on memcached",
            ),
            (
                "servers = [\"a:1\"]\nformat = { kind = \"laravel\", version = \"8\" }\n[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nkey_prefixes = [\"p.\"]\nformat = { kind = \"raw\" }",
                "format differs from [backend] format",
            ),
        ] {
            let err = error(&format!("{mc}{table}\n"));
            assert!(err.contains(needle), "{table}: {needle:?} not in {err}");
        }
        let ok = parse(&format!(
            "{mc}servers = [\"a:1\"]\nformat = {{ kind = \"rails\", cache_format_version = \"6.1\" }}\n"
        ))
        .unwrap();
        ok.validate().unwrap();
    }

    #[test]
    fn a_cluster_takes_urls_and_the_redis_fields_but_url() {
        assert_eq!(
            BackendKind::RedisCluster.fields(),
            [
                "urls",
                "response_timeout",
                "connect_timeout",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file"
            ]
        );
        let c = parse("[backend]\nkind = \"redis-cluster\"\nurls = [\"redis://a:7000\", \"redis://b:7001\"]\nresponse_timeout = \"9s\"\ntls_ca_file = \"ca.pem\"\n").unwrap();
        let Target::RedisCluster(cluster) = &c.backend.target else {
            panic!("{:?}", c.backend)
        };
        assert_eq!(cluster.urls, ["redis://a:7000", "redis://b:7001"]);
        assert_eq!(cluster.nodes.response_timeout, Duration::from_secs(9));
        // Relative to the config file, as for one server; and what serve's usage readers use.
        assert_eq!(
            c.backend.redis().unwrap().tls_ca_file.as_deref(),
            Some(Path::new("/etc/preheat/ca.pem"))
        );
        assert_eq!(c.backend.kind().capabilities(), BackendKind::Redis.capabilities());
        // A single server's `url` is refused where it stands, naming its kind.
        let err = error("[backend]\nkind = \"redis-cluster\"\nurl = \"redis://a:7000\"\n");
        for needle in [
            "line 3, column 1",
            "`url` is a field of kind = \"redis\", and this backend is kind = \"redis-cluster\"",
            "kind = \"redis-cluster\" takes urls, response_timeout",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        let err = error("[backend]\nkind = \"redis\"\nurls = []\n");
        assert!(err.contains("`urls` is a field of kind = \"redis-cluster\""), "{err}");
        // A bad value points at itself.
        let err = error("[backend]\nkind = \"redis-cluster\"\nurls = \"redis://a:7000\"\n");
        assert!(err.contains("line 3") && err.contains("expected a sequence"), "{err}");
        let err =
            error("[backend]\nkind = \"redis-cluster\"\nurls = [\"redis://a:7000\"]\nconnect_timeout = \"soon\"\n");
        assert!(err.contains("line 4") && err.contains("soon"), "{err}");
    }

    #[test]
    fn cluster_seeds_must_reach_every_node_alike() {
        for (urls, needle) in [
            ("[]", "needs `urls = [\"redis://host:7000\", …]`"),
            ("[\"memcached://a:1\"]", "\"memcached://a:1\" is not a Redis URL"),
            (
                "[\"redis://a:7000/2\"]",
                "selects database 2; a Redis Cluster has only database 0",
            ),
            (
                "[\"redis+unix:///tmp/r.sock\"]",
                "is not a host:port address (a Unix socket?)",
            ),
            (
                "[\"redis://a:7000\", \"rediss://b:7000\"]",
                "\"rediss://b:7000\" is not reached like \"redis://a:7000\"",
            ),
            (
                "[\"redis://:pw@a:7000\", \"redis://:other@b:7000\"]",
                "\"redis://:***@b:7000\" is not reached like",
            ),
            (
                "[\"rediss://a:7000\", \"rediss://b:7000#insecure\"]",
                "same scheme (redis:// or rediss://), #insecure, user and password",
            ),
        ] {
            let err = error(&format!("[backend]\nkind = \"redis-cluster\"\nurls = {urls}\n"));
            assert!(err.contains(needle), "{urls}: {needle:?} not in {err}");
            assert!(!err.contains(":pw@") && !err.contains(":other@"), "{err}");
        }
        // TLS files need rediss:// seeds, as for one server.
        let err = error("[backend]\nkind = \"redis-cluster\"\nurls = [\"redis://a:7000\"]\ntls_ca_file = \"ca.pem\"\n");
        assert!(
            err.contains("tls_ca_file is set but the backend does not connect with TLS"),
            "{err}"
        );
        let ok =
            parse("[backend]\nkind = \"redis-cluster\"\nurls = [\"redis://:pw@a:7000\", \"redis://:pw@b:7000/0\"]\n")
                .unwrap();
        ok.validate().unwrap();
    }

    #[test]
    fn refresh_needs_ttl_introspection() {
        let mut caps = BackendKind::Redis.capabilities();
        let refresh = WritePolicy::RefreshIfTtlBelow(Duration::from_secs(60));
        assert!(caps.supports(refresh) && caps.supports(WritePolicy::IfMissing));
        caps.ttl_introspection = false;
        assert!(!caps.supports(refresh));
        assert!(caps.supports(WritePolicy::Always) && caps.supports(WritePolicy::IfMissing));
    }
}
