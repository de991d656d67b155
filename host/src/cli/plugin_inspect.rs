//! `preheat plugin inspect`: interface version, imports, exports, size, and
//! whether the component loads and starts under the configured limits.

use crate::backend::{Backend, MemoryBackend};
use crate::config::{ByteSize, Config};
use crate::runtime::{inspect, HostServices, PluginLimits, Runtime};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `preheat plugin inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin component (.wasm).
    path: PathBuf,
    /// Take the limits of the plugin whose `path` is this file from this config.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Limits used without --config.
    #[command(flatten)]
    limits: super::LimitArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the inspection; exits non-zero when the component would not run.
pub async fn run(args: InspectArgs) -> Result<ExitCode> {
    let mut limits = PluginLimits {
        fuel_per_call: args.limits.fuel,
        timeout: args.limits.timeout,
        memory_limit: args.limits.memory_limit.0 as usize,
    };
    let mut cache_dir = None;
    let mut key_prefixes = vec![String::new()];
    if let Some(path) = &args.config {
        let config = Config::load(path)?;
        let wanted =
            std::fs::canonicalize(&args.path).with_context(|| format!("{} does not exist", args.path.display()))?;
        let plugin = config
            .plugins
            .iter()
            .find(|p| std::fs::canonicalize(&p.path).is_ok_and(|c| c == wanted))
            .with_context(|| format!("no plugin in {} has path {}", path.display(), args.path.display()))?;
        limits = PluginLimits {
            fuel_per_call: plugin.fuel_per_call,
            timeout: plugin.timeout,
            memory_limit: plugin.memory_limit.0 as usize,
        };
        key_prefixes = plugin.key_prefixes.clone();
        cache_dir = Some(config.component_cache_dir());
    }
    let cache_dir = cache_dir.unwrap_or_else(|| {
        Config::parse("", &args.path)
            .map(|c| c.component_cache_dir())
            .unwrap_or_default()
    });
    let runtime = Runtime::new(cache_dir)?;
    let name = args
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let services = Arc::new(HostServices {
        plugin: name.as_str().into(),
        backend: Backend::Memory(Arc::new(MemoryBackend::new(1 << 20))),
        format: crate::format::Format::Raw,
        key_prefixes,
        sources: Default::default(),
    });
    let found = inspect(&runtime, &args.path, limits, services).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        println!("{}: {} bytes", args.path.display(), found.bytes);
        match &found.interface_version {
            Some(v) => println!(
                "interface: preheat:plugin@{v} (this host: {})",
                crate::runtime::INTERFACE_VERSION
            ),
            None => println!("interface: none (does not export preheat:plugin/warmer)"),
        }
        if let Some(ms) = found.compile_ms {
            println!("compiles in {ms} ms");
        }
        println!("imports:");
        for i in &found.imports {
            println!("  {i}");
        }
        println!("exports:");
        for e in &found.exports {
            println!("  {e}");
        }
        println!(
            "limits: fuel {}/call, timeout {:?}, memory {}",
            limits.fuel_per_call,
            limits.timeout,
            ByteSize(limits.memory_limit as u64)
        );
        if found.problems.is_empty() {
            println!("ok: loads and starts under these limits");
        }
        for p in &found.problems {
            println!("problem: {p}");
        }
    }
    Ok(if found.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
