//! What `preheat plugin inspect` shows about a component: size, interface
//! version, imports and exports, and whether it loads and starts under limits.

use super::engine::Runtime;
use super::interface::version_of;
use super::plugin::{off_thread, LoadedPlugin, PluginLimits};
use super::sandbox::HostServices;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// The findings about one component.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// File size in bytes.
    pub bytes: usize,
    /// The `preheat:plugin` version it exports, if any.
    pub interface_version: Option<String>,
    /// Imported interfaces.
    pub imports: Vec<String>,
    /// Exported interfaces.
    pub exports: Vec<String>,
    /// Compile time, when it compiled (not from the cache).
    pub compile_ms: Option<u64>,
    /// Everything that would stop it from running; empty when it loads and starts.
    pub problems: Vec<String>,
}

/// Inspects the component at `path`, checking it compiles within
/// `compile_timeout` and instantiates under `limits` (time, memory for the
/// whole instance, instance counts).
pub async fn inspect(
    runtime: &Runtime,
    path: &Path,
    limits: PluginLimits,
    services: Arc<HostServices>,
    compile_timeout: Duration,
) -> Inspection {
    let mut found = Inspection {
        bytes: 0,
        interface_version: None,
        imports: vec![],
        exports: vec![],
        compile_ms: None,
        problems: vec![],
    };
    let wasm = match std::fs::read(path) {
        Ok(w) => w,
        Err(e) => {
            found.problems.push(format!("cannot read {}: {e}", path.display()));
            return found;
        }
    };
    found.bytes = wasm.len();
    let engine = runtime.engine.clone();
    let started = Instant::now();
    let compiled = off_thread(&services.plugin, compile_timeout, move || {
        Component::new(&engine, &wasm).map_err(anyhow::Error::from)
    })
    .await;
    match compiled {
        Some(Ok(component)) => {
            found.compile_ms = Some(started.elapsed().as_millis() as u64);
            let ty = component.component_type();
            found.imports = ty.imports(&runtime.engine).map(|(n, _)| n.to_string()).collect();
            found.exports = ty.exports(&runtime.engine).map(|(n, _)| n.to_string()).collect();
            found.interface_version = found
                .exports
                .iter()
                .find(|e| e.starts_with("preheat:plugin/warmer"))
                .and_then(|e| version_of(e))
                .map(str::to_string);
        }
        Some(Err(e)) => found.problems.push(format!("does not compile: {e:#}")),
        None => {
            found.problems.push(format!(
                "does not compile within compile_timeout = {compile_timeout:?} (compilation abandoned); build a smaller component or raise the limit (--compile-timeout, [run] compile_timeout)"
            ));
            return found;
        }
    }
    match LoadedPlugin::load_within(runtime, path, limits, services, compile_timeout).await {
        Ok(plugin) => {
            if let Err(e) = plugin.warm_up().await {
                found.problems.push(e.to_string());
            }
        }
        Err(e) => found.problems.push(format!("{e:#}")),
    }
    found.problems.dedup();
    found
}
