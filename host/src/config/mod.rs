//! Configuration: the TOML file, environment overrides and validation.
//!
//! Every field is documented in `config/preheat.example.toml`. Unknown fields
//! and bad values are rejected by the parser with the file, line and column.

mod backend;
mod format;
mod glob;
mod tls;
mod usage;
mod values;

pub use backend::{
    BackendConfig, BackendKind, Capabilities, Distribution, MemcachedServer, MemcachedTarget, MemoryTarget,
    RedisClusterTarget, RedisTarget, SqlTarget, Target, MAX_MEMCACHED_SERVERS,
};
pub use format::{DjangoFormat, FormatConfig, LaravelFormat, LaravelVersion, RailsFormat, RailsVersion, Store};
pub use glob::KeyGlob;
pub use tls::{is_insecure, is_tls, TlsFiles};
pub use usage::{KeyspaceConfig, PredictiveConfig, ReactiveConfig, StreamConfig, UsageConfig};
pub use values::{ByteSize, CronSchedule, Keep, KeyRegex, MemoryBudget, WritePolicy};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `false` makes `deploy` skip warming (exit 0 with a log line).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How runs are executed.
    #[serde(default)]
    pub run: RunConfig,
    /// Where values are written (`[backend]`, read by `BackendConfig::from_toml`).
    #[serde(skip)]
    pub backend: BackendConfig,
    /// Named SQL sources plugins may query (`[sources.NAME]`).
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Job history and the run lock (`[jobs]`).
    #[serde(default)]
    pub jobs: JobsConfig,
    /// The long-lived service (`preheat serve`, `[serve]`).
    #[serde(default)]
    pub serve: ServeConfig,
    /// Usage intelligence (`[usage]`): access events, hot keys, reactive and predictive warming.
    #[serde(default)]
    pub usage: UsageConfig,
    /// The plugins, in config order.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// The file this config was read from (not part of the TOML).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[run]`: how a warming run is executed.
/// Longest line of a config parse error (the parser quotes the offending
/// line of the file, which may be of any length).
pub const MAX_ERROR_LINE_BYTES: usize = 2048;

/// The longest TTL a config may set (`default_ttl`, `max_ttl`): what a
/// plugin's `ttl-seconds` (a u32) can say, so every backend can store it.
pub const MAX_TTL: Duration = Duration::from_secs(u32::MAX as u64);

/// Most batches a run produces and writes at once (`[run] concurrency`).
pub const MAX_CONCURRENCY: usize = 1024;
/// Most keys per `produce` call and backend pipeline (`[run] batch_size`).
pub const MAX_BATCH_SIZE: usize = 65_536;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Global deadline of a run; when reached, the rest is abandoned.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Batches produced and written at the same time (at most [`MAX_CONCURRENCY`]).
    pub concurrency: NonZeroUsize,
    /// Keys per `produce` call and per backend pipeline (at most [`MAX_BATCH_SIZE`]).
    pub batch_size: NonZeroUsize,
    /// Bytes of produced values allowed in flight: `"50%"` of available memory, or a size.
    pub memory_budget: MemoryBudget,
    /// Attempts per key for `retry` errors and transient backend errors.
    pub max_attempts: NonZeroUsize,
    /// First retry delay; doubles each attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_base_delay: Duration,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
    /// Longest a plugin may take to load (read, compile or take from the
    /// cache, link); counts against `deadline` too. Default: as long as the
    /// default deadline; set it lower to fail a slow plugin early.
    #[serde(with = "humantime_serde")]
    pub compile_timeout: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            deadline: Duration::from_secs(300),
            concurrency: NonZeroUsize::new(8).unwrap(),
            batch_size: NonZeroUsize::new(256).unwrap(),
            memory_budget: MemoryBudget::default(),
            max_attempts: NonZeroUsize::new(3).unwrap(),
            retry_base_delay: Duration::from_millis(100),
            cache_dir: None,
            compile_timeout: Duration::from_secs(300),
        }
    }
}

/// `[sources.NAME]`: a database a plugin may read with the `query` import.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `sqlite://path.db` (opened read-only) or `postgres://user@host:port/db`.
    pub url: String,
    /// Longest a single query may run.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Most rows a single query may return.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Connections kept open to this source.
    #[serde(default = "default_source_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Most bytes a single query's result may hold (text and bytes by length,
    /// other values 8 bytes, plus the column names), counted while rows are
    /// decoded; on SQLite also the longest value a query may build, shared
    /// between its result columns. Between 1 KiB and 1 GiB.
    #[serde(default = "default_max_result_bytes", deserialize_with = "result_bytes")]
    pub max_result_bytes: ByteSize,
    /// PostgreSQL: accept a role that is a superuser or a member of
    /// pg_read_server_files, pg_write_server_files or
    /// pg_execute_server_program; without it such a source is refused at
    /// connect, since through it a plugin could read and write the server's
    /// files and run programs.
    #[serde(default)]
    pub allow_privileged_role: bool,
}

fn default_max_result_bytes() -> ByteSize {
    ByteSize(16 << 20)
}

/// `max_result_bytes`, refused outside 1 KiB ..= 1 GiB with its line and column.
fn result_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
    let size = ByteSize::deserialize(d)?;
    if !(1 << 10..=1 << 30).contains(&size.0) {
        return Err(serde::de::Error::custom(format!(
            "max_result_bytes = {size} is outside 1 KiB ..= 1 GiB; a typical value is \"16MiB\""
        )));
    }
    Ok(size)
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_rows() -> usize {
    10_000
}
fn default_source_connections() -> u32 {
    4
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}

/// What a run does when another run of the same target holds the run lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockPolicy {
    /// Wait up to `lock_wait`, then skip.
    Wait,
    /// Skip at once.
    Skip,
}

/// `[jobs]`: the job history (`cache_warming_jobs`) and the run lock.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// `false` keeps no history and takes no run lock.
    pub enabled: bool,
    /// Job store URL: `sqlite://…` or `postgres://…`; default: SQLite in `state_dir`.
    pub url: Option<String>,
    /// Directory of the default SQLite job store.
    pub state_dir: Option<PathBuf>,
    /// When another run holds the lock: `wait` (up to `lock_wait`, then skip) or `skip`.
    pub lock: LockPolicy,
    /// Longest wait for the run lock.
    #[serde(with = "humantime_serde")]
    pub lock_wait: Duration,
    /// How much history is kept: the newest N runs, runs younger than an age,
    /// or `"all"`; older finished runs are deleted with their plugin rows.
    pub keep: Keep,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            enabled: true,
            url: None,
            state_dir: None,
            lock: LockPolicy::Wait,
            lock_wait: Duration::from_secs(60),
            keep: Keep::Runs(10_000),
        }
    }
}

/// What `serve` does about scheduled runs whose time passed while it was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedRuns {
    /// Run once at start-up for all fire times missed (not once per missed time).
    RunOnce,
    /// Forget them; wait for the next fire time.
    Skip,
}

/// `[serve]`: the HTTP API, schedules and dashboard of `preheat serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on; non-loopback addresses need `token`.
    pub listen: std::net::SocketAddr,
    /// Bearer token required by mutating endpoints (or `PREHEAT_API_TOKEN`); never blank.
    #[serde(deserialize_with = "nonblank_token")]
    pub token: Option<String>,
    /// Largest request body accepted.
    pub max_body: ByteSize,
    /// Scheduled runs missed while the service was down: `run-once` or `skip`.
    pub missed_runs: MissedRuns,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: NonZeroUsize,
    /// Event streams (`GET /cache/warming/events`, which never end and need
    /// no token) open at once; more are answered 503. Below
    /// `max_connections`, so streams cannot take every connection.
    pub max_event_streams: NonZeroUsize,
    /// Longest a client may take to send a request's headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// At SIGTERM/SIGINT: longest wait for runs to stop and for requests in
    /// flight to finish before connections are closed.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Log every request at INFO (otherwise at DEBUG).
    pub access_log: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7878)),
            token: None,
            max_body: ByteSize(1 << 20),
            missed_runs: MissedRuns::RunOnce,
            max_connections: NonZeroUsize::new(512).unwrap(),
            max_event_streams: NonZeroUsize::new(64).unwrap(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            access_log: false,
        }
    }
}

/// `[serve] token`: a blank token could never authenticate a request, yet would
/// satisfy the non-loopback guard; refused (the parser adds line and column).
fn nonblank_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let token = String::deserialize(d)?;
    if token.trim().is_empty() {
        return Err(serde::de::Error::custom(
            "[serve] token is blank: no request could authenticate with it; set a long random token (e.g. `openssl rand -hex 32`) or remove the line to listen on loopback only",
        ));
    }
    Ok(Some(token))
}

/// `[[plugins]]`: one warming plugin and what it is granted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name, used in logs, reports and metrics.
    pub name: String,
    /// The component (`.wasm`), relative to the config file.
    pub path: PathBuf,
    /// `false` leaves the plugin out of runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Keys this plugin may write must start with one of these.
    pub key_prefixes: Vec<String>,
    /// Keys must also match this regex, when set.
    #[serde(default)]
    pub key_regex: Option<KeyRegex>,
    /// Longest key accepted, in bytes.
    #[serde(default = "default_max_key_bytes")]
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes, produced or read with `cache-get`.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: ByteSize,
    /// Largest `arg` of a key spec accepted; larger specs are invalid and never queued.
    #[serde(default = "default_max_arg_bytes")]
    pub max_arg_bytes: ByteSize,
    /// Most tags a key spec may carry (each at most 128 bytes).
    #[serde(default = "default_max_tags")]
    pub max_tags: usize,
    /// Accept keys holding invisible Unicode format characters (category Cf, e.g. U+200B).
    #[serde(default)]
    pub allow_format_characters: bool,
    /// Fuel (roughly, wasm instructions) per call.
    #[serde(default = "default_fuel")]
    pub fuel_per_call: u64,
    /// Wall-clock limit per call (instantiation included), however it blocks.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Cap on all linear memories and tables of one instance together.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ByteSize,
    /// How existing keys are treated.
    #[serde(default)]
    pub write_policy: WritePolicy,
    /// TTL when neither the key spec nor the entry gives one; `None` writes without expiry.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub default_ttl: Option<Duration>,
    /// Upper bound on any TTL.
    #[serde(default, with = "humantime_serde")]
    pub max_ttl: Option<Duration>,
    /// Spread TTLs by ± this percentage so bulk-warmed keys do not expire together.
    #[serde(default)]
    pub ttl_jitter_percent: u8,
    /// Keys per second this plugin may produce (0 = unlimited), to protect its data source.
    #[serde(default)]
    pub rate_limit: u32,
    /// SQL sources (names from `[sources]`) this plugin may query.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Free-form settings handed to the plugin as strings.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// When `serve` runs this plugin on its own (cron expression); none = on demand only.
    #[serde(default)]
    pub schedule: Option<CronSchedule>,
    /// A random delay of up to this much before each scheduled run (spreads load across instances).
    #[serde(default, with = "humantime_serde")]
    pub schedule_jitter: Option<Duration>,
    /// Glob patterns (`*` = any run of characters) of keys this plugin can `produce` when
    /// asked for one it did not list (hot keys found in traffic); default: its key prefixes + `*`.
    #[serde(default)]
    pub key_patterns: Vec<KeyGlob>,
    /// This plugin's value format, instead of `[backend] format`.
    #[serde(default)]
    pub format: Option<FormatConfig>,
    /// Who keeps a sharded run to its share of this plugin's keys.
    #[serde(default)]
    pub sharding: Sharding,
}

/// `sharding` of a plugin: in a run split across workers (`--shard I/N`),
/// who keeps the run to its shard's share of the plugin's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharding {
    /// The plugin lists every key (its run context has no shard); the host
    /// keeps the keys whose hash falls in the shard (`xxh3_64(key) % N`).
    #[default]
    Host,
    /// The plugin sees the shard in its run context and lists only its share
    /// (e.g. `WHERE id % N = I`); the host keeps every key it lists.
    /// Needs a plugin built for interface 0.2.
    Plugin,
}

impl std::str::FromStr for Sharding {
    type Err = String;

    /// `host` or `plugin`, as in the config (`plugin test --sharding`).
    fn from_str(text: &str) -> Result<Sharding, String> {
        match text {
            "host" => Ok(Sharding::Host),
            "plugin" => Ok(Sharding::Plugin),
            other => Err(format!("sharding {other:?}: use host or plugin")),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max_key_bytes() -> usize {
    250
}
fn default_max_value_bytes() -> ByteSize {
    ByteSize(4 << 20)
}
fn default_max_arg_bytes() -> ByteSize {
    ByteSize(16 << 10)
}
fn default_max_tags() -> usize {
    16
}
fn default_fuel() -> u64 {
    1_000_000_000
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_memory_limit() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_ttl() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}

impl PluginConfig {
    /// Settings as the string pairs the plugin receives.
    pub fn settings_as_strings(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()
    }

    /// A plugin config with defaults for everything but the essentials (used by `plugin test`).
    pub fn for_path(name: &str, path: PathBuf, key_prefixes: Vec<String>) -> PluginConfig {
        PluginConfig {
            name: name.to_string(),
            path,
            enabled: true,
            key_prefixes,
            key_regex: None,
            max_key_bytes: default_max_key_bytes(),
            max_value_bytes: default_max_value_bytes(),
            max_arg_bytes: default_max_arg_bytes(),
            max_tags: default_max_tags(),
            allow_format_characters: false,
            fuel_per_call: default_fuel(),
            timeout: default_timeout(),
            memory_limit: default_memory_limit(),
            write_policy: WritePolicy::default(),
            default_ttl: default_ttl(),
            max_ttl: None,
            ttl_jitter_percent: 0,
            rate_limit: 0,
            sources: Vec::new(),
            settings: BTreeMap::new(),
            schedule: None,
            schedule_jitter: None,
            key_patterns: Vec::new(),
            format: None,
            sharding: Sharding::Host,
        }
    }
}

impl Config {
    /// Reads, parses, applies environment overrides and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Config::parse(&text, path)?;
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; `path` names the file in errors and anchors relative plugin paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let invalid = |mut e: toml::de::Error| {
            e.set_input(Some(text));
            // The parser quotes the offending line: clip it, a line may be megabytes long.
            let shown: Vec<_> = e
                .to_string()
                .lines()
                .map(|line| crate::report::clip(line, MAX_ERROR_LINE_BYTES).into_owned())
                .collect();
            anyhow::anyhow!("invalid config {}: {}", path.display(), shown.join("\n"))
        };
        let mut document = toml::de::DeTable::parse(text).map_err(invalid)?;
        // `[backend]` is read on its own, so that its kind decides which fields it takes.
        let backend = document.get_mut().remove("backend");
        let mut config = Config::deserialize(toml::de::Deserializer::from(document)).map_err(invalid)?;
        if let Some(backend) = backend {
            config.backend = BackendConfig::from_toml(backend).map_err(invalid)?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for plugin in &mut config.plugins {
            if plugin.path.is_relative() {
                plugin.path = base.join(&plugin.path);
            }
        }
        let mut paths = vec![&mut config.run.cache_dir, &mut config.jobs.state_dir];
        match &mut config.backend.target {
            Target::Redis(redis) | Target::RedisCluster(RedisClusterTarget { nodes: redis, .. }) => {
                paths.extend([
                    &mut redis.tls_ca_file,
                    &mut redis.tls_cert_file,
                    &mut redis.tls_key_file,
                ]);
            }
            Target::Sql(sql) => {
                if let Some(url) = &sql.url {
                    sql.url = Some(anchor_sqlite_url(url, base));
                }
            }
            Target::Memory(_) | Target::Memcached(_) => {}
        }
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        for source in config.sources.values_mut() {
            source.url = anchor_sqlite_url(&source.url, base);
        }
        if let Some(url) = &config.jobs.url {
            config.jobs.url = Some(anchor_sqlite_url(url, base));
        }
        if let Some(file) = &mut config.usage.state_file {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Applies `PREHEAT_*` environment overrides.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(url) = var("PREHEAT_REDIS_URL") {
            match &mut self.backend.target {
                Target::Redis(redis) => redis.url = Some(url),
                other => {
                    *other = Target::Redis(RedisTarget {
                        url: Some(url),
                        ..RedisTarget::default()
                    })
                }
            }
        }
        if let Some(deadline) = var("PREHEAT_DEADLINE") {
            self.run.deadline = humantime::parse_duration(&deadline)
                .with_context(|| format!("PREHEAT_DEADLINE={deadline:?} is not a duration (try \"90s\" or \"5m\")"))?;
        }
        if let Some(url) = var("PREHEAT_DATABASE_URL") {
            self.jobs.url = Some(url);
        }
        if let Some(token) = var("PREHEAT_API_TOKEN").filter(|t| !t.trim().is_empty()) {
            self.serve.token = Some(token);
        }
        if let Some(dir) = var("PREHEAT_CACHE_DIR") {
            self.run.cache_dir = Some(PathBuf::from(dir));
        }
        Ok(())
    }

    /// Checks what the parser cannot: unique names, URLs present, prefixes non-empty.
    pub fn validate(&self) -> Result<()> {
        let file = self
            .source
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        match &self.backend.target {
            Target::Redis(RedisTarget { url: None, .. }) => bail!("{file}: [backend] kind = \"redis\" needs `url = \"redis://host:6379/0\"` (or set PREHEAT_REDIS_URL)"),
            Target::Sql(SqlTarget { url: None, .. }) => bail!("{file}: [backend] kind = \"sql\" needs `url = \"sqlite://cache.db\"` or `url = \"postgres://user@host/db\"`"),
            Target::Sql(SqlTarget { table, .. })
                if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
            {
                bail!("{file}: [backend] table = {table:?}: use letters, digits, `_` and `.` only")
            }
            Target::Redis(redis) => validate_tls(redis, redis.url.as_deref().unwrap_or_default()).with_context(|| file.clone())?,
            Target::Memcached(memcached) => memcached
                .validate()
                .map_err(|why| anyhow::anyhow!("{file}: [backend] {why}"))?,
            Target::RedisCluster(cluster) => validate_cluster(cluster).with_context(|| file.clone())?,
            _ => {}
        }
        if self.run.concurrency.get() > MAX_CONCURRENCY {
            bail!(
                "{file}: [run] concurrency = {} is above the limit of {MAX_CONCURRENCY} batches at once",
                self.run.concurrency
            );
        }
        if self.run.batch_size.get() > MAX_BATCH_SIZE {
            bail!(
                "{file}: [run] batch_size = {} is above the limit of {MAX_BATCH_SIZE} keys per call",
                self.run.batch_size
            );
        }
        if self.serve.max_event_streams >= self.serve.max_connections {
            bail!(
                "{file}: [serve] max_event_streams = {} must be below max_connections = {}: event streams never end, so they could hold every connection",
                self.serve.max_event_streams,
                self.serve.max_connections
            );
        }
        self.usage
            .tracker
            .validate()
            .with_context(|| format!("{file}: [usage.tracker]"))?;
        let reactive_window = self.usage.reactive.window.as_millis() as u64;
        if self.usage.reactive.enabled
            && !self
                .usage
                .tracker
                .windows
                .iter()
                .any(|w| w.length_ms == reactive_window)
        {
            bail!("{file}: [usage.reactive] window = {:?} is not one of the tracker's windows ([usage.tracker] windows); use one of {:?} ms", self.usage.reactive.window, self.usage.tracker.windows.iter().map(|w| w.length_ms).collect::<Vec<_>>());
        }
        let capabilities = self.backend.capabilities();
        let kind = self.backend.kind().name();
        if self.usage.stream.as_ref().is_some_and(|s| s.url.is_none()) && !capabilities.event_stream {
            bail!("{file}: [usage.stream] needs `url = \"redis://…\"`: a kind = \"{kind}\" backend has no stream to read usage events from");
        }
        if self.usage.keyspace.enabled && !capabilities.key_events {
            bail!("{file}: [usage.keyspace] enabled = true needs a backend that reports expired and evicted keys (kind = \"redis\" or \"redis-cluster\"); a kind = \"{kind}\" backend does not");
        }
        self.validate_format(&self.backend.format)
            .with_context(|| format!("{file}: [backend] format"))?;
        let mut names = std::collections::HashSet::new();
        for (i, plugin) in self.plugins.iter().enumerate() {
            let at = format!("{file}: [[plugins]] #{} (`{}`)", i + 1, plugin.name);
            if let Some(format) = &plugin.format {
                self.validate_format(format).with_context(|| format!("{at}: format"))?;
                if self.backend.kind() == BackendKind::Memcached && *format != self.backend.format {
                    bail!("{at}: format differs from [backend] format, and a kind = \"memcached\" backend writes one format: the item flags that tell the reader how to decode a value (php-memcached's serializer type, Dalli's Marshal bit) are the backend's; give this plugin its own preheat config, or use [backend] format");
                }
            }
            if !capabilities.supports(plugin.write_policy) {
                bail!("{at}: write_policy = {} needs a backend that reads a key's remaining TTL, and a kind = \"{kind}\" backend cannot; use \"if-missing\" or \"always\"", plugin.write_policy);
            }
            if plugin.name.trim().is_empty() {
                bail!("{file}: [[plugins]] #{} has an empty name", i + 1);
            }
            if !names.insert(plugin.name.as_str()) {
                bail!("{at}: the name is used by another plugin; names must be unique");
            }
            if plugin.key_prefixes.is_empty() || plugin.key_prefixes.iter().any(|p| p.is_empty()) {
                bail!("{at}: key_prefixes must list at least one non-empty prefix (e.g. [\"products.\"]); it bounds which keys the plugin may write");
            }
            if plugin.ttl_jitter_percent > 100 {
                bail!(
                    "{at}: ttl_jitter_percent = {} must be between 0 and 100",
                    plugin.ttl_jitter_percent
                );
            }
            for (name, ttl) in [("default_ttl", plugin.default_ttl), ("max_ttl", plugin.max_ttl)] {
                if ttl.is_some_and(|t| t > MAX_TTL) {
                    bail!("{at}: {name} is above the longest TTL, {} seconds (about 136 years, the most a plugin can give): use a shorter one, or none for no expiry", MAX_TTL.as_secs());
                }
            }
            if plugin.fuel_per_call == 0 {
                bail!("{at}: fuel_per_call must be above 0");
            }
            if let Some(unknown) = plugin.sources.iter().find(|s| !self.sources.contains_key(*s)) {
                bail!(
                    "{at}: sources = [{unknown:?}] names no [sources.{unknown}] table; define it or remove the grant"
                );
            }
        }
        Ok(())
    }

    /// Checks that `format` fits the backend and resolves (e.g. Laravel's prefixes).
    fn validate_format(&self, format: &FormatConfig) -> Result<()> {
        let formats = self.backend.capabilities().formats;
        if !formats.contains(&format.kind()) {
            bail!(
                "a kind = \"{}\" backend cannot hold the {} format; it takes kind = {}",
                self.backend.kind().name(),
                format.kind(),
                formats
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        }
        if let (FormatConfig::Laravel(_), Target::Sql(sql)) = (format, &self.backend.target) {
            if !sql.key_prefix.is_empty() {
                bail!(
                    "[backend] key_prefix = {:?} would be added to Laravel's cache prefix; remove it and set the format's cache_prefix instead",
                    sql.key_prefix
                );
            }
        }
        if let (FormatConfig::Rails(rails), Target::Memcached(_)) = (format, &self.backend.target) {
            if rails.cache_format_version != RailsVersion::V6_1 {
                bail!(
                    "cache_format_version = \"{}\" on memcached: preheat writes Rails' MemCacheStore entries as Rails 6.1 does (Dalli marshals the Entry); 7.x's MemCacheStore framing is not implemented, use \"6.1\"",
                    rails.cache_format_version.as_str()
                );
            }
        }
        if let FormatConfig::Laravel(laravel) = format {
            laravel
                .key_prefix(Store::of(&self.backend))
                .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Directory for state (the default SQLite job store): config, else
    /// `$XDG_STATE_HOME/preheat`, else `~/.local/state/preheat`.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.jobs.state_dir {
            return dir.clone();
        }
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from(".preheat"))
            .join("preheat")
    }

    /// The value format of a plugin: its own, else the backend's.
    pub fn format_of<'a>(&'a self, plugin: &'a PluginConfig) -> &'a FormatConfig {
        plugin.format.as_ref().unwrap_or(&self.backend.format)
    }

    /// The enabled plugins.
    pub fn enabled_plugins(&self) -> impl Iterator<Item = &PluginConfig> {
        self.plugins.iter().filter(|p| p.enabled)
    }

    /// Directory of compiled components: config, else `$XDG_CACHE_HOME/preheat`, else `~/.cache/preheat`.
    pub fn component_cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.run.cache_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".preheat"));
        base.join("preheat").join("components")
    }
}

/// Checks the Redis TLS options: only with a `rediss://` URL, not with
/// `#insecure` (which would ignore the CA), and readable, valid PEM files.
fn validate_tls(redis: &RedisTarget, url: &str) -> Result<()> {
    let set = [
        ("tls_ca_file", &redis.tls_ca_file),
        ("tls_cert_file", &redis.tls_cert_file),
        ("tls_key_file", &redis.tls_key_file),
    ];
    let Some((key, _)) = set.iter().find(|(_, v)| v.is_some()) else {
        return Ok(());
    };
    if !is_tls(url) {
        bail!(
            "[backend] {key} is set but the backend does not connect with TLS (the url is {:?}): use a rediss://host:port/db URL or remove the tls_* options",
            crate::support::redact_url(url)
        );
    }
    if redis.tls_ca_file.is_some() && is_insecure(url).unwrap_or(false) {
        bail!("[backend] url ends in #insecure, which turns certificate verification off, so tls_ca_file would be ignored: remove #insecure to verify against tls_ca_file, or remove tls_ca_file");
    }
    redis.tls_files()?;
    Ok(())
}

/// Checks a cluster's seed URLs: at least one, each a TCP `redis://` or
/// `rediss://` URL, all with the same scheme, credentials and `#insecure`
/// (the cluster client reaches every node alike), database 0 (the only one
/// a cluster has); then its TLS files as for one server.
fn validate_cluster(cluster: &RedisClusterTarget) -> Result<()> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let Some(first) = cluster.urls.first() else {
        bail!("[backend] kind = \"redis-cluster\" needs `urls = [\"redis://host:7000\", …]`: one or more seed nodes of the cluster");
    };
    /// What must be the same for every seed: TLS, `#insecure`, user, password.
    type Reach = (bool, bool, Option<String>, Option<String>);
    let reach = |url: &str| -> Result<Reach> {
        let shown = crate::support::redact_url(url);
        let info = url.into_connection_info().with_context(|| {
            format!("[backend] urls: {shown:?} is not a Redis URL: expected redis://[user:password@]host:port or rediss://…")
        })?;
        let (tls, insecure) = match info.addr() {
            ConnectionAddr::Tcp(..) => (false, false),
            ConnectionAddr::TcpTls { insecure, .. } => (true, *insecure),
            _ => bail!(
                "[backend] urls: {shown:?} is not a host:port address (a Unix socket?); a cluster's nodes are reached over TCP at the host:port they announce, so give redis://host:port"
            ),
        };
        let settings = info.redis_settings();
        if settings.db() != 0 {
            bail!(
                "[backend] urls: {shown:?} selects database {}; a Redis Cluster has only database 0: drop the /{} from the URL",
                settings.db(),
                settings.db()
            );
        }
        Ok((
            tls,
            insecure,
            settings.username().map(str::to_string),
            settings.password().map(str::to_string),
        ))
    };
    let expected = reach(first)?;
    for url in &cluster.urls[1..] {
        if reach(url)? != expected {
            bail!(
                "[backend] urls: {:?} is not reached like {:?}: every seed of a cluster needs the same scheme (redis:// or rediss://), #insecure, user and password",
                crate::support::redact_url(url),
                crate::support::redact_url(first)
            );
        }
    }
    validate_tls(&cluster.nodes, first)
}

/// Makes a relative `sqlite://` path relative to the config file's directory.
fn anchor_sqlite_url(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(':') && !rest.is_empty() => {
            format!("sqlite://{}", base.join(rest).display())
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/preheat/preheat.toml"))
    }

    #[test]
    fn event_streams_must_stay_below_the_connection_cap() {
        let err = parse("[backend]\nkind = \"memory\"\n[serve]\nmax_connections = 64\nmax_event_streams = 64\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_event_streams = 64 must be below max_connections = 64"),
            "{err}"
        );
        let c = parse("[backend]\nkind = \"memory\"\n").unwrap();
        assert_eq!(
            (c.serve.max_event_streams.get(), c.serve.max_connections.get()),
            (64, 512)
        );
        c.validate().unwrap();
    }

    const MINIMAL: &str = r#"
[backend]
kind = "redis"
url = "redis://127.0.0.1:6379/0"
[[plugins]]
name = "critical-keys"
path = "plugins/critical_keys.wasm"
key_prefixes = ["system.", "user.profile."]
[plugins.settings]
user_ids = "1-100"
page_size = 50
"#;

    #[test]
    fn a_key_pattern_past_the_glob_bounds_is_refused_at_its_line_before_globset_sees_it() {
        let plugin = MINIMAL.replace("[plugins.settings]\nuser_ids = \"1-100\"\npage_size = 50\n", "");
        let huge = format!("{plugin}key_patterns = [\"user.*\", \"{}\"]\n", "a".repeat(300 * 1024));
        let err = parse(&huge).unwrap_err().to_string();
        let shown = &err[..err.len().min(300)];
        assert!(
            err.contains("line 9") && err.contains("the limit is 1024 bytes"),
            "{shown}"
        );
        assert!(
            err.len() < 4 * MAX_ERROR_LINE_BYTES && err.contains("[truncated: "),
            "the 300 KB line is not echoed whole: {} bytes",
            err.len()
        );
        let err = parse(&format!("{plugin}key_patterns = [\"a[\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 9") && err.contains("invalid key pattern \"a[\""),
            "{err}"
        );
    }

    #[test]
    fn run_sizes_past_their_limits_are_refused() {
        let run = |table: &str| {
            parse(&format!("[run]\n{table}\n[backend]\nkind = \"memory\"\n"))
                .unwrap()
                .validate()
                .map_err(|e| e.to_string())
        };
        assert!(run("concurrency = 1025").unwrap_err().contains("limit of 1024"));
        assert!(run("batch_size = 1000000000000")
            .unwrap_err()
            .contains("limit of 65536"));
        run("concurrency = 1024\nbatch_size = 65536").unwrap();
    }

    #[test]
    fn blank_serve_token_is_refused_with_line_and_column() {
        for token in ["\"\"", "\"   \""] {
            let err = parse(&format!("[serve]\nlisten = \"0.0.0.0:7878\"\ntoken = {token}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("line 3, column 9") && err.contains("token is blank"),
                "{err}"
            );
        }
        assert!(parse("[serve]\ntoken = \"x\"\n").unwrap().serve.token.is_some());
    }

    #[test]
    fn tls_options_need_a_rediss_url_and_are_anchored_at_the_config_file() {
        let tls = |url: &str| {
            parse(&format!(
                "[backend]\nkind = \"redis\"\nurl = \"{url}\"\ntls_ca_file = \"certs/ca.pem\"\n"
            ))
            .unwrap()
        };
        let c = tls("rediss://127.0.0.1:6380/0");
        assert_eq!(
            c.backend.redis().unwrap().tls_ca_file.as_deref(),
            Some(Path::new("/etc/preheat/certs/ca.pem"))
        );
        let err = format!("{:#}", c.validate().unwrap_err());
        assert!(
            err.contains("tls_ca_file") && err.contains("/etc/preheat/certs/ca.pem") && err.contains("cannot be read"),
            "{err}"
        );
        let err = format!("{:#}", tls("redis://127.0.0.1:6379/0").validate().unwrap_err());
        assert!(err.contains("tls_ca_file is set") && err.contains("rediss://"), "{err}");
        let err = format!(
            "{:#}",
            tls("rediss://127.0.0.1:6380/0#insecure").validate().unwrap_err()
        );
        assert!(err.contains("#insecure") && err.contains("would be ignored"), "{err}");
    }

    #[test]
    fn jobs_keep_is_checked_where_it_is_written() {
        assert_eq!(parse("").unwrap().jobs.keep, Keep::Runs(10_000));
        assert_eq!(parse("[jobs]\nkeep = 50\n").unwrap().jobs.keep, Keep::Runs(50));
        assert_eq!(
            parse("[jobs]\nkeep = \"7d\"\n").unwrap().jobs.keep,
            Keep::For(Duration::from_secs(7 * 86400))
        );
        let err = parse("[jobs]\nlock = \"wait\"\nkeep = 0\n").unwrap_err().to_string();
        assert!(
            err.contains("line 3, column 8") && err.contains("outside 1 ..="),
            "{err}"
        );
        let err = parse("[jobs]\nkeep = \"a while\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2, column 8") && err.contains("not an age"), "{err}");
        let err = parse("[jobs]\nkeep = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("a count of runs"), "{err}");
    }

    #[test]
    fn minimal_config_parses_with_defaults_and_relative_paths() {
        let c = parse(MINIMAL).unwrap();
        c.validate().unwrap();
        assert_eq!(c.backend.kind(), BackendKind::Redis);
        assert_eq!(c.run.deadline, Duration::from_secs(300));
        let p = &c.plugins[0];
        assert_eq!(p.path, Path::new("/etc/preheat/plugins/critical_keys.wasm"));
        assert_eq!(p.fuel_per_call, 1_000_000_000);
        assert_eq!(p.memory_limit, ByteSize(64 << 20));
        assert_eq!(p.write_policy, WritePolicy::IfMissing);
        assert_eq!(
            p.settings_as_strings(),
            vec![("page_size".into(), "50".into()), ("user_ids".into(), "1-100".into())]
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_file_line_and_column() {
        let err = parse("[run]\nconcurrency = 4\ndeadlnie = \"5m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/preheat/preheat.toml"), "{err}");
        assert!(err.contains("line 3, column 1"), "{err}");
        assert!(err.contains("deadlnie"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected_where_they_are() {
        let err = parse("[run]\ndeadline = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse("[run]\nconcurrency = 0\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("nonzero"), "{err}");
        let err = parse(&MINIMAL.replace("key_prefixes", "write_policy = \"sometimes\"\nkey_prefixes"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes") && err.contains("if-missing"), "{err}");
    }

    #[test]
    fn validation_names_the_plugin_and_the_fix() {
        let c = parse(&MINIMAL.replace("[\"system.\", \"user.profile.\"]", "[]")).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("critical-keys") && err.contains("key_prefixes"), "{err}");
        let c = parse("[backend]\nkind = \"redis\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("PREHEAT_REDIS_URL"));
    }

    #[test]
    fn sources_and_sqlite_paths_are_anchored_at_the_config_file() {
        let c = parse(
            "[sources.app]\nurl = \"sqlite://data/app.db\"\n[sources.pg]\nurl = \"postgres://u@db/app\"\n[backend]\nkind = \"sql\"\nurl = \"sqlite://cache.db\"\ntable = \"cache_entries\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.sources["app"].url, "sqlite:///etc/preheat/data/app.db");
        assert_eq!(c.sources["pg"].url, "postgres://u@db/app");
        assert_eq!(c.backend.url(), Some("sqlite:///etc/preheat/cache.db"));
        assert_eq!(c.sources["app"].max_rows, 10_000);
        let err = parse(&MINIMAL.replace("key_prefixes", "sources = [\"nope\"]\nkey_prefixes"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("[sources.nope]"), "{err}");
    }

    #[test]
    fn ttls_beyond_what_a_plugin_can_give_are_refused() {
        for field in ["default_ttl", "max_ttl"] {
            let err = parse(&MINIMAL.replace("key_prefixes", &format!("{field} = \"200years\"\nkey_prefixes")))
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("{field} is above the longest TTL, 4294967295 seconds")),
                "{err}"
            );
        }
        parse(&MINIMAL.replace("key_prefixes", "max_ttl = \"100years\"\nkey_prefixes"))
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn env_overrides_backend_and_deadline() {
        let mut c = parse("").unwrap();
        c.apply_env(|k| match k {
            "PREHEAT_REDIS_URL" => Some("redis://10.0.0.1:6380/2".into()),
            "PREHEAT_DEADLINE" => Some("90s".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.backend.kind(), BackendKind::Redis);
        assert_eq!(c.backend.url(), Some("redis://10.0.0.1:6380/2"));
        assert_eq!(c.run.deadline, Duration::from_secs(90));
        let err = c
            .apply_env(|k| (k == "PREHEAT_DEADLINE").then(|| "later".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("PREHEAT_DEADLINE"));
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/preheat.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::parse(&text, &path).unwrap();
        c.validate().unwrap();
        assert!(!c.plugins.is_empty());
    }
}
