//! The plugins a [`Warmer`](super::Warmer) has loaded, kept for its later
//! runs: a run loads a plugin only when it is not kept yet, or when its file
//! changed on disk since it was loaded (size, modification time or inode). A
//! version installed by a hot reload is pinned: it stays until the next
//! reload, whatever happens to the file. One load at a time per plugin, so a
//! run and a preload never compile the same component twice.

use crate::runtime::LoadedPlugin;
use anyhow::Result;
use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Every plugin kept by one warmer, by name.
#[derive(Default)]
pub(super) struct KeptPlugins {
    by_name: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One plugin's place: what is kept, and the lock a load holds.
#[derive(Default)]
struct Entry {
    kept: Mutex<Option<Kept>>,
    loading: tokio::sync::Mutex<()>,
}

/// A loaded plugin and the version of its file.
struct Kept {
    plugin: Arc<LoadedPlugin>,
    /// The file as it was when loading began; `None`: pinned by a hot reload.
    stamp: Option<FileStamp>,
}

/// What tells one version of a file from the next without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    /// The file's stamp, `None` when it cannot be read (gone, no permission).
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }
}

impl Entry {
    /// The kept plugin when it is still the version at `path`.
    fn current(&self, path: &Path) -> Option<Arc<LoadedPlugin>> {
        let kept = self.kept.lock().unwrap();
        let kept = kept.as_ref()?;
        match &kept.stamp {
            None => Some(kept.plugin.clone()),
            Some(stamp) => (FileStamp::of(path).as_ref() == Some(stamp)).then(|| kept.plugin.clone()),
        }
    }
}

impl KeptPlugins {
    fn entry(&self, name: &str) -> Arc<Entry> {
        self.by_name
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The plugin `name` from `path`: the kept version when it is current,
    /// otherwise what `load` makes of the file, kept for later runs. A failed
    /// load keeps nothing (the next run tries again).
    pub(super) async fn get_or_load<F>(&self, name: &str, path: &Path, load: F) -> Result<Arc<LoadedPlugin>>
    where
        F: Future<Output = Result<Arc<LoadedPlugin>>>,
    {
        let entry = self.entry(name);
        if let Some(plugin) = entry.current(path) {
            return Ok(plugin);
        }
        let _loading = entry.loading.lock().await;
        // Another run or the preload may have loaded it while this one waited.
        if let Some(plugin) = entry.current(path) {
            return Ok(plugin);
        }
        let changed = entry.kept.lock().unwrap().is_some();
        let stamp = FileStamp::of(path);
        let plugin = load.await?;
        tracing::info!(
            plugin = name,
            path = %path.display(),
            cache = ?plugin.cache_outcome,
            "plugin loaded{}",
            if changed { " (its file changed on disk)" } else { "" }
        );
        *entry.kept.lock().unwrap() = Some(Kept {
            plugin: plugin.clone(),
            stamp,
        });
        Ok(plugin)
    }

    /// Keeps `plugin` until the next pin or load.
    pub(super) fn pin(&self, plugin: Arc<LoadedPlugin>) {
        let entry = self.entry(plugin.name());
        *entry.kept.lock().unwrap() = Some(Kept { plugin, stamp: None });
    }

    /// The kept version of `name`, current or not.
    pub(super) fn kept(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        let entry = self.by_name.lock().unwrap().get(name).cloned()?;
        let kept = entry.kept.lock().unwrap();
        kept.as_ref().map(|k| k.plugin.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::FileStamp;

    #[test]
    fn a_rewritten_file_has_a_new_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"one").unwrap();
        let first = FileStamp::of(&path).unwrap();
        assert_eq!(FileStamp::of(&path), Some(first.clone()));
        // Same size, replaced by rename (what cargo and deploys do): a new inode.
        let next = dir.path().join("p.wasm.new");
        std::fs::write(&next, b"two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_ne!(FileStamp::of(&path), Some(first));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(FileStamp::of(&path), None);
    }
}
