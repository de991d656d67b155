//! Wrappers around the host's capabilities.

/// Reads the current value of `key` from the target cache backend.
///
/// `Ok(None)` when the key is absent; `Err` with the host's message when the
/// backend could not be read. Useful to build a value incrementally or to skip
/// keys that are already fresh.
///
/// Only works inside the host: on a native target (unit tests) it returns an
/// error saying so.
pub fn cache_get(key: &str) -> Result<Option<Vec<u8>>, String> {
    if cfg!(target_arch = "wasm32") {
        crate::bindings::preheat::plugin::host::cache_get(key)
    } else {
        Err(format!(
            "cache_get({key:?}): the cache is only reachable inside the preheat host"
        ))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn cache_get_outside_the_host_is_an_error() {
        let err = super::cache_get("k").unwrap_err();
        assert!(err.contains("only reachable inside the preheat host"), "{err}");
    }
}
