//! Listing: a plugin's `enumerate` paged into the queue (or the keys a run
//! was given), each page filtered, de-duplicated and validated.

use super::shared::Shared;
use super::tally::{KeyDetail, KeyOutcome};
use crate::plan::{owns, CursorHistory, RecentKeys, WarmItem, MAX_CURSOR_BYTES};
use crate::runtime::{CallError, KeySpec};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Queues the keys a run was given for one plugin (instead of enumerating it).
pub(super) async fn feed_keys(shared: Arc<Shared>, p: usize, keys: Vec<KeySpec>) {
    queue_keys(&shared, p, keys, &mut RecentKeys::new(), &mut 0).await;
    shared.queue.producer_done();
}

/// Pages through one plugin's `enumerate`, feeding valid, new keys to the queue
/// a page at a time (counters and the queue are touched once per page, not per key).
pub(super) async fn enumerate_plugin(shared: Arc<Shared>, p: usize) {
    let slot = &shared.slots[p];
    let plugin = slot.plugin.as_ref().expect("only loaded plugins are enumerated");
    let mut seen = RecentKeys::new();
    let mut cursors = CursorHistory::new();
    let mut cursor: Option<String> = None;
    let mut listed: u64 = 0;
    while !shared.halted() && !slot.disabled.load(Ordering::SeqCst) {
        let page = match plugin.enumerate(&slot.ctx, cursor.as_deref(), &shared.cancel).await {
            Err(CallError::Cancelled(_)) => break,
            Err(CallError::Failed(msg)) => {
                shared.tally.plugin_error(p, msg);
                break;
            }
            Ok((result, stats)) => {
                let n = result.as_ref().map(|page| page.keys.len()).unwrap_or(0);
                shared
                    .tally
                    .call(p, "enumerate", n, stats.fuel, stats.elapsed.as_micros() as u64);
                match result {
                    Ok(page) => page,
                    Err(msg) => {
                        shared.tally.plugin_error(
                            p,
                            format!("plugin `{}`: enumerate returned an error: {msg}", plugin.name()),
                        );
                        break;
                    }
                }
            }
        };
        if queue_keys(&shared, p, page.keys, &mut seen, &mut listed).await {
            break;
        }
        match page.cursor {
            None => break,
            Some(next) if next.len() > MAX_CURSOR_BYTES => {
                shared.tally.plugin_error(p, format!("plugin `{}`: enumerate returned a cursor of {} bytes, over the {MAX_CURSOR_BYTES}-byte limit; keep cursors short (an offset or the last id)", plugin.name(), next.len()));
                break;
            }
            Some(next) if !cursors.first_time(&next) => {
                let shown = crate::report::clip(&next, 80);
                shared.tally.plugin_error(p, format!("plugin `{}`: enumerate returned the cursor {shown:?} it had returned before in this run (a cursor cycle); stopped to avoid an endless loop", plugin.name()));
                break;
            }
            next => cursor = next,
        }
    }
    shared.queue.producer_done();
}

/// Counts, filters (to the run's filter and the shard's share), de-duplicates, validates and queues one page of a plugin's
/// keys; `listed` counts the plugin's keys so far. Returns whether the key limit was reached.
pub(super) async fn queue_keys(
    shared: &Shared,
    p: usize,
    keys: Vec<KeySpec>,
    seen: &mut RecentKeys,
    listed: &mut u64,
) -> bool {
    let slot = &shared.slots[p];
    let (mut new, mut duplicates, mut other_shards, mut limit_reached) = (0u64, 0u64, 0u64, false);
    let mut items = Vec::with_capacity(keys.len());
    let mut invalid = Vec::new();
    for spec in keys {
        if shared.key_limit.is_some_and(|limit| *listed >= limit) {
            limit_reached = true;
            break;
        }
        if !shared.filter.accepts(&spec) {
            continue;
        }
        if slot.share.is_some_and(|shard| !owns(shard, &spec.key)) {
            other_shards += 1;
            continue;
        }
        if !seen.insert(&spec.key) {
            duplicates += 1;
            continue;
        }
        *listed += 1;
        new += 1;
        match slot.rules.check_spec(&spec) {
            Ok(()) => items.push(WarmItem {
                plugin: p,
                spec,
                attempts: 0,
            }),
            Err(reason) => invalid.push((spec, reason)),
        }
    }
    shared.tally.add(p, |c| {
        c.enumerated += new;
        c.duplicates += duplicates;
        c.other_shards += other_shards;
    });
    shared.progress.add_enumerated(new);
    for (spec, reason) in invalid {
        let detail = KeyDetail::error(format!("invalid key: {reason}"), 0);
        shared.finish(p, &spec, KeyOutcome::Invalid, detail);
    }
    for item in shared.queue.push_all(items).await {
        shared.finish(p, &item.spec, KeyOutcome::Abandoned, KeyDetail::default());
    }
    limit_reached
}
