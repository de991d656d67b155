//! The `preheat` command line: `run`, `deploy`, `check`, `watch`, `serve`,
//! `history`/`status`, `hot-data`/`stats`/`simulate`, `cache get`/`ttl`,
//! `plugin test`/`new`/`inspect` and `demo`.

mod cache;
mod demo;
mod history;
mod plugin_inspect;
mod plugin_new;
mod plugin_test;
mod progress;
mod simulate;
mod usage;

use crate::config::Config;
use crate::exec::{RunOptions, Warmer};
use crate::report::{render_summary, Report, RunStatus};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use progress::ProgressDisplay;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// preheat: warm caches before users ask, with WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "preheat", version, about)]
pub struct Cli {
    /// Log format: human on a terminal, json for CI log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Only warnings and errors; no progress display.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Warm now; exits non-zero unless every key was warmed or skipped as fresh.
    Run(RunArgs),
    /// The deploy hook: warm, print a summary, exit 0 whatever happened (unless --strict).
    /// `PREHEAT_SKIP=1` or `enabled = false` skips it.
    Deploy {
        #[command(flatten)]
        run: RunArgs,
        /// Exit non-zero when warming did not complete, like `run`.
        #[arg(long)]
        strict: bool,
    },
    /// Validate the config and load every plugin (interface version, limits); for CI.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Warm, then watch the config and every plugin's .wasm: reload on change and re-run.
    Watch {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The long-lived service: HTTP API, schedules, Prometheus metrics and a live dashboard.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Address to listen on (default: [serve] listen, else 127.0.0.1:7878).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also hot-reload plugins and the config on change, and re-run what changed.
        #[arg(long)]
        watch: bool,
    },
    /// The hottest keys and trends from the usage state `serve` saves.
    HotData(usage::HotDataArgs),
    /// Hit rate before/after runs and cost-benefit, from the usage state `serve` saves.
    Stats(usage::StatsArgs),
    /// Replay an access trace against a simulated cache under each warming strategy (or --generate one).
    Simulate(simulate::SimulateArgs),
    /// Recent runs from the job history.
    History {
        /// The config file (names the job store).
        #[arg(long, short)]
        config: PathBuf,
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The run in progress, if any, from the job history; or how a sharded
    /// run's group stands (exit 0 only when every shard completed).
    Status {
        /// The config file (names the job store).
        #[arg(long, short)]
        config: PathBuf,
        /// The run group of a sharded run: each shard's attempts, and the ones to rerun.
        #[arg(long)]
        group: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create the demo application database (SQLite by default, or PostgreSQL).
    Demo(demo::DemoArgs),
    /// Read warmed keys as the application does (`get`, `ttl`).
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Plugin author tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Strategy name recorded and passed to plugins.
    #[arg(long, default_value = "proactive")]
    strategy: String,
    #[command(flatten)]
    shard: ShardArgs,
}

/// Splitting one run across workers (docs/DEPLOY.md).
#[derive(Debug, Args)]
struct ShardArgs {
    /// Warm only shard I of N (0-based), e.g. 1/3: the keys with xxh3_64(key) % N == I.
    #[arg(long, env = "PREHEAT_SHARD", value_name = "I/N")]
    shard: Option<String>,
    /// Split into N shards, this worker's index taken from JOB_COMPLETION_INDEX
    /// (set by a Kubernetes Indexed Job).
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// The run group every shard of the run shares, so the history shows them
    /// as one run and a failed shard can be rerun alone (a release id, the Job's name).
    #[arg(long, env = "PREHEAT_RUN_GROUP")]
    group: Option<String>,
}

impl ShardArgs {
    /// The shard this worker warms, or `None` for a whole run.
    fn resolve(&self) -> Result<Option<crate::report::RunShard>> {
        let shard = match (&self.shard, self.shards) {
            (None, None) => {
                if self.group.is_some() {
                    anyhow::bail!("--group (PREHEAT_RUN_GROUP) names the group of a sharded run: give the shard too, with --shard I/N or --shards N");
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => anyhow::bail!(
                "give the shard once: --shard I/N (or PREHEAT_SHARD), or --shards N with the index in JOB_COMPLETION_INDEX"
            ),
            (Some(text), None) => crate::plan::parse_shard(text).context("--shard (or PREHEAT_SHARD)")?,
            (None, Some(count)) => {
                let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                    anyhow::anyhow!("--shards {count} takes this worker's index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job sets it), which is not set: give --shard I/{count} instead")
                })?;
                let index: u32 = index.trim().parse().map_err(|_| {
                    anyhow::anyhow!("JOB_COMPLETION_INDEX is {index:?}, not a shard index (a whole number from 0)")
                })?;
                crate::plan::shard(index, count).context("--shards with JOB_COMPLETION_INDEX")?
            }
        };
        let Some(group) = &self.group else {
            anyhow::bail!(
                "shard {}/{} needs a run group, so the job history records the shards as one run: give --group NAME or set PREHEAT_RUN_GROUP (the same on every shard: a release id, or a Kubernetes Job's name)",
                shard.index, shard.count
            );
        };
        crate::plan::check_group(group).context("--group (or PREHEAT_RUN_GROUP)")?;
        Ok(Some(crate::report::RunShard {
            group: group.clone(),
            index: shard.index,
            count: shard.count,
        }))
    }
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run one plugin against the in-memory backend and show its keys, sizes, fuel and time.
    Test(plugin_test::TestArgs),
    /// Scaffold a plugin project (Rust, Python or JavaScript) that builds and passes `plugin test`.
    New(plugin_new::NewArgs),
    /// Show a component's interface version, imports, exports and size, and check it loads under limits.
    Inspect(plugin_inspect::InspectArgs),
}

/// Sandbox limits for one plugin given on the command line (`plugin test`, `plugin inspect`).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Fuel per call.
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// Wall-clock limit per call, however it blocks (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Cap on all linear memories and tables of the instance together (e.g. 64MiB).
    #[arg(long, default_value = "64MiB", value_parser = crate::config::ByteSize::parse)]
    memory_limit: crate::config::ByteSize,
    /// Longest the component may take to compile and load (e.g. 60s).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    compile_timeout: std::time::Duration,
}

impl LimitArgs {
    /// Sets the plugin's fuel, timeout and memory limit from the flags.
    fn apply(&self, plugin: &mut crate::config::PluginConfig) {
        plugin.fuel_per_call = self.fuel;
        plugin.timeout = self.timeout;
        plugin.memory_limit = self.memory_limit;
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("preheat: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("preheat: error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Do not wait for blocking work left behind (a dropped call, a timed-out load).
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

fn init_logging(format: LogFormat, quiet: bool) {
    let default = if quiet {
        "warn"
    } else {
        "info,wasmtime=warn,cranelift_codegen=warn,sqlx=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PREHEAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let config = Config::load(&args.config)?;
            let report = warm(config, &args, cli.quiet).await?;
            Ok(exit_for(&report))
        }
        Command::Deploy { run, strict } => deploy(run, strict, cli.quiet).await,
        Command::Check { config } => check(&config).await,
        Command::History { config, limit, json } => history::history(&config, limit, json).await,
        Command::Status {
            config,
            group: None,
            json,
        } => history::status(&config, json).await,
        Command::Status {
            config,
            group: Some(group),
            json,
        } => history::group_status(&config, &group, json).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Cache(command) => cache::run(command).await,
        Command::Serve { config, listen, watch } => crate::serve::serve(&config, listen, watch)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::HotData(args) => usage::hot_data(args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Stats(args) => usage::stats(args),
        Command::Watch { config } => crate::watch::watch(&config).await.map(|()| ExitCode::SUCCESS),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test::run(args, cli.quiet).await,
        Command::Plugin(PluginCommand::Inspect(args)) => plugin_inspect::run(args).await,
        Command::Plugin(PluginCommand::New(args)) => plugin_new::run(args),
    }
}

/// Runs a warming pass with a progress display, prints the summary, writes the report.
async fn warm(config: Config, args: &RunArgs, quiet: bool) -> Result<Report> {
    let shard = args.shard.resolve()?;
    let warmer = Warmer::new(config)?;
    let options = RunOptions {
        strategy: args.strategy.clone(),
        shard,
        ..RunOptions::default()
    };
    let history = crate::jobs::History::open(warmer.config()).await;
    let display = ProgressDisplay::start(options.progress.clone(), quiet);
    let (report, prune) = crate::jobs::run_recorded(&warmer, &history, options).await;
    prune.run().await;
    display.stop();
    finish(&report, args.report.as_deref())?;
    Ok(report)
}

fn finish(report: &Report, path: Option<&Path>) -> Result<()> {
    eprint!("{}", render_summary(report));
    if let Some(path) = path {
        let json = serde_json::to_vec_pretty(report).expect("reports serialize");
        std::fs::write(path, json).with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(())
}

fn exit_for(report: &Report) -> ExitCode {
    match report.status {
        RunStatus::Completed | RunStatus::Skipped => ExitCode::SUCCESS,
        RunStatus::Partial | RunStatus::Failed | RunStatus::Stopped => ExitCode::FAILURE,
    }
}

/// The deploy hook never fails the deploy unless `--strict`.
async fn deploy(args: RunArgs, strict: bool, quiet: bool) -> Result<ExitCode> {
    if std::env::var("PREHEAT_SKIP").is_ok_and(|v| !v.is_empty() && v != "0") {
        tracing::info!("PREHEAT_SKIP is set: skipping cache warming");
        finish(&Report::skipped("PREHEAT_SKIP is set"), args.report.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = match Config::load(&args.config) {
        Ok(config) if !config.enabled => {
            tracing::info!(config = %args.config.display(), "enabled = false in the config: skipping cache warming");
            let report = Report::skipped("enabled = false in the config");
            finish(&report, args.report.as_deref())?;
            report
        }
        Ok(config) => match warm(config, &args, quiet).await {
            Ok(report) => report,
            Err(e) => failed_before_start(&args, e)?,
        },
        Err(e) => failed_before_start(&args, e)?,
    };
    if strict {
        return Ok(exit_for(&report));
    }
    if report.status != RunStatus::Completed && report.status != RunStatus::Skipped {
        tracing::warn!(status = ?report.status, "cache warming did not complete; the deploy goes on (use --strict to fail it)");
    }
    Ok(ExitCode::SUCCESS)
}

fn failed_before_start(args: &RunArgs, e: anyhow::Error) -> Result<Report> {
    tracing::error!("cache warming could not start: {e:#}");
    let report = Report::failed(&e);
    finish(&report, args.report.as_deref())?;
    Ok(report)
}

/// Validates the config and loads (compiles, version-checks, instantiates) every plugin.
async fn check(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    let backend = crate::backend::Backend::Memory(Arc::new(crate::backend::MemoryBackend::new(1 << 20)));
    let warmer = Warmer::new(config)?;
    let sources = crate::sources::SourceSet::connect(&warmer.config().sources).await;
    let mut problems = 0;
    for plugin in warmer.config().enabled_plugins() {
        let loaded = match warmer.load_plugin(plugin, backend.clone(), &sources).await {
            Ok(loaded) => loaded,
            Err(e) => {
                problems += 1;
                println!("✗ {}: {e:#}", plugin.name);
                continue;
            }
        };
        match loaded.warm_up().await {
            Ok(()) => println!(
                "✓ {}: {} ({} bytes, compiled {}), fuel {}/call, timeout {:?}, memory {}",
                plugin.name,
                plugin.path.display(),
                loaded.wasm_bytes,
                if loaded.cache_outcome == crate::runtime::CacheOutcome::Hit {
                    "from cache"
                } else {
                    "now"
                },
                plugin.fuel_per_call,
                plugin.timeout,
                plugin.memory_limit
            ),
            Err(e) => {
                problems += 1;
                println!("✗ {}: {e}", plugin.name);
            }
        }
    }
    println!(
        "{} plugin(s) checked, {problems} problem(s)",
        warmer.config().enabled_plugins().count()
    );
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
