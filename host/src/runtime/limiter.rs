//! The store limiter: `memory_limit` bounds the bytes of **all** linear
//! memories and tables of one plugin instance together (a component may hold
//! many core instances, each with its own memory), and the counts of core
//! instances, memories and tables per instance are capped.
//!
//! A refused growth is a trap whose error names the limit; a refused count
//! comes back from wasmtime as "resource limit exceeded: … count too high",
//! which [`count_cap_message`] turns into a message naming the cap.

use crate::config::ByteSize;
use wasmtime::ResourceLimiter;

/// Most core module instances one plugin instance may create.
pub const MAX_CORE_INSTANCES: usize = 100;
/// Most linear memories one plugin instance may create.
pub const MAX_MEMORIES: usize = 16;
/// Most tables one plugin instance may create.
pub const MAX_TABLES: usize = 100;
/// Bytes a table element costs the host (wasmtime stores one pointer per element).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// A growth refused because memories and tables together would pass `memory_limit`.
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit exceeded: growing a {what} would bring the instance's linear memories and tables to {requested} bytes in total ({}), over memory_limit = {limit} bytes ({}) for the whole instance",
    ByteSize(*requested as u64),
    ByteSize(*limit as u64)
)]
pub(crate) struct MemoryCapExceeded {
    /// "linear memory" or "table".
    pub what: &'static str,
    /// The instance's total after the growth, in bytes.
    pub requested: usize,
    /// `memory_limit`, in bytes.
    pub limit: usize,
}

/// Accounts every memory and table of one store against one byte limit.
pub(crate) struct StoreCap {
    limit: usize,
    used: usize,
    /// Bytes granted by the last memory growth, returned if the growth then fails.
    last_memory_growth: usize,
    /// Bytes granted by the last table growth, returned if the growth then fails.
    last_table_growth: usize,
}

impl StoreCap {
    /// A fresh account with `limit` bytes for memories and tables together.
    pub(crate) fn new(limit: usize) -> StoreCap {
        StoreCap {
            limit,
            used: 0,
            last_memory_growth: 0,
            last_table_growth: 0,
        }
    }

    /// Grants `grow` more bytes, or refuses with the limit named.
    fn grant(&mut self, what: &'static str, grow: usize) -> wasmtime::Result<usize> {
        let requested = self.used.saturating_add(grow);
        if requested > self.limit {
            tracing::debug!(
                what,
                requested,
                limit = self.limit,
                "plugin growth refused: memory_limit"
            );
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                what,
                requested,
                limit: self.limit,
            }));
        }
        self.used = requested;
        Ok(grow)
    }
}

impl ResourceLimiter for StoreCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        self.last_memory_growth = self.grant("linear memory", desired.saturating_sub(current))?;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.last_memory_growth);
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES);
        self.last_table_growth = self.grant("table", grow)?;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.last_table_growth);
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// The message for wasmtime's "resource limit exceeded: {kind} count too high at N",
/// naming our cap; `None` for any other error.
pub(crate) fn count_cap_message(error: &str) -> Option<String> {
    let rest = error.split("resource limit exceeded: ").nth(1)?;
    let (kind, at) = rest.split_once(" count too high at ")?;
    let at: String = at.chars().take_while(char::is_ascii_digit).collect();
    let (cap, name, plural) = match kind {
        "instance" => (MAX_CORE_INSTANCES, "MAX_CORE_INSTANCES", "core instances"),
        "memory" => (MAX_MEMORIES, "MAX_MEMORIES", "linear memories"),
        "table" => (MAX_TABLES, "MAX_TABLES", "tables"),
        _ => return None,
    };
    Some(format!(
        "instance limit exceeded: the component creates {at} or more {plural}, over the host's cap of {cap} {plural} per plugin instance ({name}, docs/SECURITY.md); link the component into fewer core modules"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_limit_bounds_all_memories_together() {
        let mut cap = StoreCap::new(64 * MIB);
        assert!(cap.memory_growing(0, 40 * MIB, None).unwrap());
        // A second memory of the same instance counts against the same budget.
        let err = cap.memory_growing(0, 40 * MIB, None).unwrap_err();
        let m = err.downcast_ref::<MemoryCapExceeded>().unwrap();
        assert_eq!(m.requested, 80 * MIB);
        let text = err.to_string();
        assert!(text.contains("memory_limit = 67108864 bytes (64.0 MiB)"), "{text}");
        assert!(text.contains("whole instance"), "{text}");
        assert!(cap.memory_growing(0, 24 * MIB, None).unwrap());
        assert!(cap.memory_growing(24 * MIB, 24 * MIB + 65536, None).is_err());
    }

    #[test]
    fn tables_count_in_bytes_against_the_same_limit() {
        let mut cap = StoreCap::new(MIB);
        assert!(cap.memory_growing(0, MIB / 2, None).unwrap());
        assert!(cap.table_growing(0, 1000, None).unwrap());
        let err = cap.table_growing(1000, MIB / TABLE_ELEMENT_BYTES, None).unwrap_err();
        assert!(err.to_string().contains("growing a table"), "{err}");
    }

    #[test]
    fn a_failed_growth_gives_its_bytes_back() {
        let mut cap = StoreCap::new(64 * MIB);
        assert!(cap.memory_growing(0, 60 * MIB, None).unwrap());
        cap.memory_grow_failed(wasmtime::Error::msg("mmap failed")).unwrap();
        assert!(cap.memory_growing(0, 60 * MIB, None).unwrap());
        assert!(cap.table_growing(0, 1024, None).unwrap());
        cap.table_grow_failed(wasmtime::Error::msg("too big")).unwrap();
        assert_eq!(cap.used, 60 * MIB);
    }

    #[test]
    fn counts_are_capped_and_the_refusal_names_the_cap() {
        let cap = StoreCap::new(MIB);
        assert_eq!(
            (cap.instances(), cap.memories(), cap.tables()),
            (MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES)
        );
        let msg = count_cap_message("resource limit exceeded: instance count too high at 101").unwrap();
        assert!(msg.contains("101 or more core instances"), "{msg}");
        assert!(msg.contains("MAX_CORE_INSTANCES"), "{msg}");
        let msg = count_cap_message("failed: resource limit exceeded: memory count too high at 17").unwrap();
        assert!(msg.contains("cap of 16 linear memories"), "{msg}");
        assert_eq!(count_cap_message("wasm trap: unreachable"), None);
    }
}
