//! On-disk cache of compiled components, so a deploy hook does not pay
//! compilation every time.
//!
//! Entries are keyed by the SHA-256 of the `.wasm` and the engine's
//! compatibility hash (wasmtime version, target, settings); they are written
//! atomically (temp file + rename). An entry that fails to load is a miss and
//! is replaced.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled components live, and the engine they are valid for.
#[derive(Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_hash: u64,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled artifact.
    Hit,
    /// Compiled now (and stored, if the cache directory is writable).
    Miss,
}

impl CompileCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> CompileCache {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_hash: hasher.finish(),
        }
    }

    fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = Sha256::digest(wasm);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}-{:016x}.cwasm", self.engine_hash))
    }

    /// Loads the compiled form of `wasm`, compiling and storing it on a miss.
    pub(crate) fn load(&self, engine: &Engine, wasm: &[u8], origin: &Path) -> Result<(Component, CacheOutcome)> {
        let path = self.entry_path(wasm);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine
            // with the same compatibility hash (it is in the file name), into a
            // directory only this tool writes; a corrupt or stale file fails the
            // header checks and is treated as a miss below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "compiled component cache entry unusable; recompiling")
                }
            }
        }
        let component = Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a valid WebAssembly component", origin.display()))?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), error = %format!("{e:#}"), "could not write the compiled component cache; next start compiles again");
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn store(&self, path: &Path, component: &Component) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        Ok(())
    }
}
