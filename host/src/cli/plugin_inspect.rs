//! `preheat plugin inspect`: interface version, imports, exports, size, and
//! whether the component loads and starts under the configured limits.

use crate::backend::{Backend, MemoryBackend};
use crate::config::{ByteSize, Config, PluginConfig};
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
    let name = args
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut plugin = PluginConfig::for_path(&name, args.path.clone(), vec![String::new()]);
    args.limits.apply(&mut plugin);
    let mut compile_timeout = args.limits.compile_timeout;
    let mut cache_dir = None;
    if let Some(path) = &args.config {
        let config = Config::load(path)?;
        let wanted =
            std::fs::canonicalize(&args.path).with_context(|| format!("{} does not exist", args.path.display()))?;
        plugin = config
            .plugins
            .iter()
            .find(|p| std::fs::canonicalize(&p.path).is_ok_and(|c| c == wanted))
            .with_context(|| format!("no plugin in {} has path {}", path.display(), args.path.display()))?
            .clone();
        compile_timeout = config.run.compile_timeout;
        cache_dir = Some(config.component_cache_dir());
    }
    let cache_dir = cache_dir.unwrap_or_else(|| {
        Config::parse("", &args.path)
            .map(|c| c.component_cache_dir())
            .unwrap_or_default()
    });
    let runtime = Runtime::new(cache_dir)?;
    let limits = PluginLimits::of(&plugin);
    let services = Arc::new(HostServices {
        plugin: plugin.name.as_str().into(),
        backend: Backend::Memory(Arc::new(MemoryBackend::new(1 << 20))),
        format: crate::format::Format::Raw,
        key_prefixes: plugin.key_prefixes.clone(),
        max_value_bytes: plugin.max_value_bytes.0,
        sources: Default::default(),
    });
    let found = inspect(&runtime, &args.path, limits, services, compile_timeout).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        println!("{}: {} bytes", args.path.display(), found.bytes);
        match &found.interface_version {
            Some(v) => {
                println!(
                    "interface: preheat:plugin@{v} (this host serves {} and {})",
                    crate::runtime::INTERFACE_VERSION,
                    crate::runtime::LEGACY_INTERFACE_VERSION
                );
                if crate::runtime::Interface::of_version(v) == Some(crate::runtime::Interface::V0_1) {
                    println!(
                        "note: {v} is frozen; rebuilt against preheat-guest for {} the plugin gets typed host errors, the run's shard and packed batches",
                        crate::runtime::INTERFACE_VERSION
                    );
                }
            }
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
            "limits: fuel {}/call, timeout {:?}, memory {} per instance, compile {compile_timeout:?}",
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
