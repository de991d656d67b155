//! The workers: a batch of one plugin's keys through `produce`, each result
//! turned into a write (see `write.rs`), a retry, or an outcome.

use super::budget::ByteBudget;
use super::shared::Shared;
use super::tally::{KeyDetail, KeyOutcome};
use super::write::write_batch;
use crate::backend::Write;
use crate::plan::WarmItem;
use crate::runtime::{CallError, KeySpec, WarmError};
use crate::support::backoff;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

/// Takes batches until the run is over.
pub(super) async fn worker(shared: Arc<Shared>) {
    while let Some((p, batch)) = shared.queue.pop_batch().await {
        process_batch(&shared, p, batch).await;
        shared.queue.producer_done();
    }
}

/// Produces and writes one batch of one plugin, recording every key's outcome.
pub(super) async fn process_batch(shared: &Arc<Shared>, p: usize, batch: Vec<WarmItem>) {
    let slot = &shared.slots[p];
    let (specs, attempts): (Vec<KeySpec>, Vec<u32>) = batch.into_iter().map(|i| (i.spec, i.attempts + 1)).unzip();
    if slot.disabled.load(Ordering::SeqCst) {
        return shared.finish_all(
            p,
            &specs,
            &attempts,
            KeyOutcome::Failed,
            "not attempted: the plugin was disabled after repeated failures",
        );
    }
    let plugin = slot.plugin.as_ref().expect("only loaded plugins have queued keys");
    // What this call can hand the host at most: every value at its cap, and no
    // more than the instance's memory holds (the runtime checks both before
    // copying). After the call the reservation shrinks to what was produced.
    let worst_case = (specs.len() as u64 * slot.config.max_value_bytes.0).min(slot.config.memory_limit.0);
    let mut permit = tokio::select! {
        permit = async {
            if let Some(limiter) = &slot.limiter {
                let n = NonZeroU32::new(specs.len() as u32).expect("batches are never empty");
                limiter.until_n_ready(n).await.expect("batches are capped at the rate limit");
            }
            shared.budget.reserve(worst_case).await
        } => permit,
        _ = shared.halt() => return shared.finish_all(p, &specs, &attempts, KeyOutcome::Abandoned, ""),
    };
    let _batch = shared.progress.batch_started(specs.len());

    let (results, stats) = match plugin.produce(&slot.ctx, &specs, &shared.cancel).await {
        Ok(ok) => ok,
        Err(CallError::Cancelled(_)) => return shared.finish_all(p, &specs, &attempts, KeyOutcome::Abandoned, ""),
        Err(CallError::Failed(msg)) => {
            shared.finish_all(p, &specs, &attempts, KeyOutcome::Failed, &msg);
            return shared.call_failed(p, &msg);
        }
    };
    slot.failed_calls_in_a_row.store(0, Ordering::SeqCst);
    shared
        .tally
        .call(p, "produce", specs.len(), stats.fuel, stats.elapsed.as_micros() as u64);
    if let Some(observer) = &shared.observer {
        observer.produce_call(&slot.config.name, specs.len(), stats.elapsed);
    }

    let now = SystemTime::now();
    let mut writes = Vec::with_capacity(specs.len());
    let mut written_meta = Vec::with_capacity(specs.len());
    let mut refused_bytes = 0;
    for ((spec, attempt), result) in specs.into_iter().zip(attempts).zip(results) {
        match result {
            // The key moves into the write; the rest of the spec is not needed any more.
            Ok(entry) => {
                let size = entry.value.len();
                match slot.to_write(spec, entry, now) {
                    Ok((write, meta)) => {
                        written_meta.push((meta, attempt));
                        writes.push(write);
                    }
                    Err((spec, msg)) => {
                        refused_bytes += size;
                        shared.finish(p, &spec, KeyOutcome::Failed, KeyDetail::error(msg, attempt))
                    }
                }
            }
            Err(WarmError::Skip(reason)) => shared.finish(
                p,
                &spec,
                KeyOutcome::SkippedByPlugin,
                KeyDetail {
                    error: Some(reason),
                    attempts: attempt,
                    ..Default::default()
                },
            ),
            Err(WarmError::Fail(reason)) => shared.finish(
                p,
                &spec,
                KeyOutcome::Failed,
                KeyDetail::rejected(format!("plugin failed the key: {reason}"), attempt),
            ),
            Err(WarmError::Retry(reason)) => schedule_retry(shared, p, spec, attempt, &reason).await,
        }
    }
    if refused_bytes > 0 {
        own_values(&mut writes);
    }
    // What is held from here to the write: the values as they will be stored.
    ByteBudget::shrink(&mut permit, writes.iter().map(|w| w.value.len() as u64).sum());
    if !writes.is_empty() {
        write_batch(shared, p, writes, written_meta).await;
    }
    drop(permit);
}

/// Requeues a key the plugin asked to retry, after a backoff; fails it when
/// out of attempts. At most the queue's capacity of keys wait out a backoff
/// at once (past that the worker waits for room), and the queue holds at
/// most its capacity again, so a plugin that asks to retry every key cannot
/// make the host hold them all.
pub(super) async fn schedule_retry(shared: &Arc<Shared>, p: usize, spec: KeySpec, attempt: u32, reason: &str) {
    let max = shared.config.run.max_attempts.get() as u32;
    if attempt >= max {
        let msg = format!("gave up after {attempt} attempts; last: {reason}");
        return shared.finish(p, &spec, KeyOutcome::Failed, KeyDetail::error(msg, attempt));
    }
    let waiting = tokio::select! {
        permit = shared.retry_room.clone().acquire_owned() => permit.expect("the retry semaphore is never closed"),
        _ = shared.halt() => return shared.finish(p, &spec, KeyOutcome::Abandoned, KeyDetail::default()),
    };
    shared.tally.add(p, |c| c.retried += 1);
    shared.queue.add_producer();
    let delay = backoff(shared.config.run.retry_base_delay, attempt);
    let shared = shared.clone();
    tokio::spawn(async move {
        let item = WarmItem {
            plugin: p,
            spec,
            attempts: attempt,
        };
        let requeued = tokio::select! {
            _ = tokio::time::sleep(delay) => shared.queue.push_now(item.clone()),
            _ = shared.halt() => false,
        };
        if !requeued {
            shared.finish(p, &item.spec, KeyOutcome::Abandoned, KeyDetail::default());
        }
        // Given back once the key is requeued or its outcome recorded: the run
        // waits for every permit before it reports.
        drop(waiting);
        shared.queue.producer_done();
    });
}

/// Gives every write a buffer of its own. A 0.2 plugin's values share one
/// buffer, which lives as long as any of them: when some of a batch were
/// refused (over max_value_bytes, say), the kept ones are copied out so that
/// the refused bytes are freed now, not held uncounted by the memory budget
/// until the write ends.
fn own_values(writes: &mut [Write]) {
    for w in writes {
        w.value = bytes::Bytes::copy_from_slice(&w.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept value cut from a batch buffer that also held a refused 1 MiB
    /// value no longer points into that buffer.
    #[test]
    fn kept_values_stop_sharing_the_buffer_of_refused_ones() {
        let mut buffer = vec![b'x'; 1 << 20];
        buffer.extend_from_slice(b"kept");
        let buffer = bytes::Bytes::from(buffer);
        let inside = buffer.as_ptr_range();
        let mut writes = [Write {
            key: "k".into(),
            value: buffer.slice(1 << 20..),
            ttl: None,
        }];
        assert!(inside.contains(&writes[0].value.as_ptr()));
        own_values(&mut writes);
        // `buffer` is still alive, so the copy cannot have been put inside it.
        assert_eq!(&writes[0].value[..], b"kept");
        assert!(!inside.contains(&writes[0].value.as_ptr()));
        drop(buffer);
    }
}
