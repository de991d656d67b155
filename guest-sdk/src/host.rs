//! Wrappers around the host's capabilities.

/// Reads the current value of `key` from the target cache backend.
///
/// `Ok(None)` when the key is absent; an [`Error`](crate::Error) when it
/// could not be read: `Denied` outside the plugin's key prefixes, `Limit`
/// over its `max_value_bytes`, `Transient` when the backend is unreachable
/// for now, `Invalid` when the stored value does not decode in the format. Useful to build a value incrementally or to skip
/// keys that are already fresh.
///
/// Only works inside the host: on a native target (unit tests) it returns an
/// error saying so.
pub fn cache_get(key: &str) -> Result<Option<Vec<u8>>, crate::Error> {
    if cfg!(target_arch = "wasm32") {
        crate::bindings::preheat::plugin::host::cache_get(key)
    } else {
        Err(crate::Error::new(
            crate::ErrorKind::Denied,
            format!("cache_get({key:?}): the cache is only reachable inside the preheat host"),
        ))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn cache_get_outside_the_host_is_an_error() {
        let err = super::cache_get("k").unwrap_err().message;
        assert!(err.contains("only reachable inside the preheat host"), "{err}");
    }
}
