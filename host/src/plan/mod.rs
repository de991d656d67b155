//! Planning: turning what plugins enumerate into a prioritised stream of work.
//!
//! Keys are filtered to what the run asked for ([`KeyFilter`]) and, in a
//! sharded run, to the shard's share (`shard.rs`), validated ([`KeyRules`]), de-duplicated in a bounded window
//! (`RecentKeys`), checked for cursor cycles (`CursorHistory`), and queued by priority in
//! the [`WorkQueue`], from which the executor takes per-plugin batches.

mod cursors;
mod dedup;
mod filter;
mod queue;
mod shard;
mod validate;

pub(crate) use cursors::{CursorHistory, MAX_CURSOR_BYTES};
pub(crate) use dedup::RecentKeys;
pub use filter::{parse_priority, KeyFilter};
pub use queue::{WarmItem, WorkQueue};
pub use shard::{check_group, owns, parse_shard, shard, shard_of, MAX_GROUP_BYTES, MAX_SHARDS};
pub use validate::{KeyRules, MAX_TAG_BYTES};

use crate::runtime::Priority;

/// Queue level of a priority: 0 is served first.
pub fn level(priority: Priority) -> usize {
    match priority {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// Lower-case name of a priority, as in config and reports.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Critical => "critical",
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Low => "low",
    }
}
