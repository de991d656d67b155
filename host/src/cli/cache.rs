//! `preheat cache get KEY` and `preheat cache ttl KEY`: read a key the way the
//! target application does (its key layout and value format), for operators
//! checking what a deploy warmed.

use crate::backend::Backend;
use crate::config::Config;
use crate::format::{Format, Store};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

/// `preheat cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Read a key through the target's format: the decoded value as JSON, its TTL and the format found.
    Get(KeyArgs),
    /// A key's remaining time to live.
    Ttl(KeyArgs),
}

/// Which key, through which config and plugin.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The key as the plugin names it (the format adds prefixes and namespaces).
    key: String,
    /// The config file (names the backend and the format).
    #[arg(long, short)]
    config: PathBuf,
    /// Use this plugin's format instead of `[backend] format`.
    #[arg(long)]
    plugin: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `cache` subcommand; exit 1 when the key is absent.
pub async fn run(command: CacheCommand) -> Result<ExitCode> {
    let (args, get) = match command {
        CacheCommand::Get(args) => (args, true),
        CacheCommand::Ttl(args) => (args, false),
    };
    let config = Config::load(&args.config)?;
    let format_config = match &args.plugin {
        None => &config.backend.format,
        Some(name) => match config.plugins.iter().find(|p| &p.name == name) {
            Some(plugin) => config.format_of(plugin),
            None => bail!(
                "--plugin {name:?}: no such plugin in {} (plugins: {:?})",
                args.config.display(),
                config.plugins.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
            ),
        },
    };
    let format = Format::new(format_config, Store::of(&config.backend))?;
    let stored_key = format.storage_key(&args.key)?;
    let backend = Backend::connect(&config.backend).await?;
    let ttl = backend.ttl(&stored_key).await?;
    let Some(ttl) = ttl else {
        eprintln!(
            "{stored_key:?} is not in {} (format {})",
            backend.describe(),
            format.name()
        );
        return Ok(ExitCode::FAILURE);
    };
    let ttl_json = ttl.map_or("null".to_string(), |t| format!("{:.3}", t.as_secs_f64()));
    if !get {
        if args.json {
            println!("{{\"key\":{},\"ttl_seconds\":{ttl_json}}}", json_str(&stored_key));
        } else {
            println!(
                "{}",
                ttl.map_or("no expiry".to_string(), |t| format!("{}s", t.as_secs()))
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(stored) = backend.get(&stored_key).await? else {
        eprintln!("{stored_key:?} expired while being read");
        return Ok(ExitCode::FAILURE);
    };
    let decoded = format.decode(&stored).with_context(|| {
        format!(
            "{stored_key:?} ({} bytes) is not a {} value",
            stored.len(),
            format.name()
        )
    })?;
    let expires_at = decoded.expiry_text();
    let expired = decoded.is_expired(SystemTime::now());
    if args.json {
        println!(
            "{{\"key\":{},\"format\":{},\"ttl_seconds\":{ttl_json},\"entry_expires_at\":{},\"expired\":{expired},\"bytes\":{},\"value\":{}}}",
            json_str(&stored_key),
            json_str(&decoded.detected),
            expires_at.as_deref().map_or("null".to_string(), json_str),
            stored.len(),
            decoded.value.to_json()
        );
    } else {
        println!("key:     {stored_key}");
        println!("format:  {} ({} bytes)", decoded.detected, stored.len());
        println!(
            "ttl:     {}",
            ttl.map_or("no expiry".to_string(), |t| format!("{}s", t.as_secs()))
        );
        if let Some(at) = &expires_at {
            println!(
                "entry:   expires {at}{}",
                if expired {
                    " (expired: the app reads a miss)"
                } else {
                    ""
                }
            );
        }
        println!("value:   {}", decoded.value.to_json());
    }
    Ok(ExitCode::SUCCESS)
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}
