//! The work queue: keys waiting to be produced, by priority level and plugin.
//!
//! Workers always take from the most urgent non-empty level, rotating between
//! plugins within a level, so a critical key never waits behind lower ones.
//! Enumerators block while the queue is full (backpressure keeps memory flat).
//! The queue ends when nothing is queued and no producer (an enumerator, a
//! batch in flight, or a pending retry) can add more.

use super::level;
use crate::runtime::KeySpec;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// One key to warm, and how many times it was tried.
#[derive(Debug, Clone)]
pub struct WarmItem {
    /// Index of the plugin that owns the key.
    pub plugin: usize,
    /// The key spec as the plugin enumerated it.
    pub spec: KeySpec,
    /// Attempts made so far.
    pub attempts: u32,
}

struct State {
    /// `levels[priority][plugin]`.
    levels: [Vec<VecDeque<WarmItem>>; 4],
    /// Next plugin to serve, per level.
    cursor: [usize; 4],
    queued: usize,
    producers: usize,
    closed: bool,
}

/// The shared priority queue of a run.
pub struct WorkQueue {
    state: Mutex<State>,
    changed: Notify,
    capacity: usize,
    batch_limits: Vec<usize>,
}

impl WorkQueue {
    /// A queue for `batch_limits.len()` plugins, taking at most `batch_limits[p]` keys per batch of plugin `p`.
    pub fn new(batch_limits: Vec<usize>, capacity: usize) -> WorkQueue {
        let n = batch_limits.len();
        let empty = || vec![VecDeque::new(); n];
        WorkQueue {
            state: Mutex::new(State {
                levels: [empty(), empty(), empty(), empty()],
                cursor: [0; 4],
                queued: 0,
                producers: 0,
                closed: false,
            }),
            changed: Notify::new(),
            capacity,
            batch_limits,
        }
    }

    /// Registers something that may still add items.
    pub fn add_producer(&self) {
        self.state.lock().unwrap().producers += 1;
    }

    /// Unregisters a producer; the last one finishing ends the queue once it is empty.
    pub fn producer_done(&self) {
        self.state.lock().unwrap().producers -= 1;
        self.changed.notify_waiters();
    }

    /// Queues an item, waiting while the queue is at capacity. Returns `false` once closed.
    pub async fn push(&self, item: WarmItem) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if s.closed {
                    return false;
                }
                if s.queued < self.capacity {
                    Self::insert(&mut s, item);
                    drop(s);
                    self.changed.notify_waiters();
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Queues items in order, waiting whenever the queue is at capacity: one lock
    /// and one wake-up per run of items that fit, not per item. Returns the items
    /// left unqueued because the queue was closed.
    pub async fn push_all(&self, items: Vec<WarmItem>) -> Vec<WarmItem> {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if s.closed {
                    return items.collect();
                }
                let room = self.capacity.saturating_sub(s.queued);
                if room > 0 {
                    for item in items.by_ref().take(room) {
                        Self::insert(&mut s, item);
                    }
                    drop(s);
                    self.changed.notify_waiters();
                    continue;
                }
            }
            notified.await;
        }
        Vec::new()
    }

    /// Queues an item now, ignoring capacity (retries must not deadlock). Returns `false` once closed.
    pub fn push_now(&self, item: WarmItem) -> bool {
        let mut s = self.state.lock().unwrap();
        if s.closed {
            return false;
        }
        Self::insert(&mut s, item);
        drop(s);
        self.changed.notify_waiters();
        true
    }

    fn insert(s: &mut State, item: WarmItem) {
        let lvl = level(item.spec.priority);
        let plugin = item.plugin;
        s.levels[lvl][plugin].push_back(item);
        s.queued += 1;
    }

    /// Takes the next batch: the most urgent level first, plugins in rotation.
    /// The caller becomes a producer until it calls [`WorkQueue::producer_done`]
    /// (its batch may schedule retries). `None` when the run is over.
    pub async fn pop_batch(&self) -> Option<(usize, Vec<WarmItem>)> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if s.closed || (s.queued == 0 && s.producers == 0) {
                    return None;
                }
                if let Some(batch) = self.take(&mut s) {
                    s.producers += 1;
                    drop(s);
                    self.changed.notify_waiters();
                    return Some(batch);
                }
            }
            notified.await;
        }
    }

    fn take(&self, s: &mut State) -> Option<(usize, Vec<WarmItem>)> {
        for lvl in 0..4 {
            let n = s.levels[lvl].len();
            for step in 0..n {
                let plugin = (s.cursor[lvl] + step) % n;
                let deque = &mut s.levels[lvl][plugin];
                if deque.is_empty() {
                    continue;
                }
                let take = deque.len().min(self.batch_limits[plugin]);
                let batch: Vec<WarmItem> = deque.drain(..take).collect();
                s.queued -= batch.len();
                s.cursor[lvl] = (plugin + 1) % n;
                return Some((plugin, batch));
            }
        }
        None
    }

    /// Closes the queue (the run is stopping) and returns everything still queued.
    pub fn close(&self) -> Vec<WarmItem> {
        let mut s = self.state.lock().unwrap();
        s.closed = true;
        s.queued = 0;
        let drained = s
            .levels
            .iter_mut()
            .flat_map(|l| l.iter_mut().flat_map(|d| d.drain(..)))
            .collect();
        drop(s);
        self.changed.notify_waiters();
        drained
    }

    /// Removes and returns everything queued for one plugin (it was disabled).
    pub fn remove_plugin(&self, plugin: usize) -> Vec<WarmItem> {
        let mut s = self.state.lock().unwrap();
        let drained: Vec<WarmItem> = s.levels.iter_mut().flat_map(|l| l[plugin].drain(..)).collect();
        s.queued -= drained.len();
        drop(s);
        self.changed.notify_waiters();
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Priority;

    fn item(plugin: usize, key: &str, priority: Priority) -> WarmItem {
        WarmItem {
            plugin,
            spec: KeySpec {
                key: key.into(),
                priority,
                ttl_seconds: None,
                tags: vec![],
                arg: None,
            },
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn critical_keys_are_served_before_lower_ones_across_plugins() {
        let q = WorkQueue::new(vec![2, 2], 100);
        q.add_producer();
        for i in 0..3 {
            assert!(q.push(item(0, &format!("low{i}"), Priority::Low)).await);
        }
        assert!(q.push(item(1, "crit", Priority::Critical)).await);
        assert!(q.push(item(0, "normal", Priority::Normal)).await);
        q.producer_done();
        let mut order = vec![];
        while let Some((_, batch)) = q.pop_batch().await {
            order.extend(batch.into_iter().map(|i| i.spec.key));
            q.producer_done();
        }
        assert_eq!(order, ["crit", "normal", "low0", "low1", "low2"]);
    }

    #[tokio::test]
    async fn the_queue_ends_only_when_no_producer_is_left() {
        let q = std::sync::Arc::new(WorkQueue::new(vec![10], 100));
        q.add_producer();
        let (_, batch) = {
            q.push_now(item(0, "a", Priority::Normal));
            q.pop_batch().await.unwrap()
        };
        q.producer_done(); // the enumerator is done, but the batch is still in flight
        let q2 = q.clone();
        let retry = tokio::spawn(async move {
            q2.push_now(batch[0].clone());
            q2.producer_done(); // the in-flight batch finishes after requeueing
        });
        let (_, again) = q.pop_batch().await.expect("the retried item comes back");
        assert_eq!(again[0].spec.key, "a");
        retry.await.unwrap();
        q.producer_done();
        assert!(q.pop_batch().await.is_none());
    }

    #[tokio::test]
    async fn push_all_waits_for_room_and_returns_what_a_closed_queue_refused() {
        let q = std::sync::Arc::new(WorkQueue::new(vec![2], 3));
        q.add_producer();
        let items = (0..5).map(|i| item(0, &format!("k{i}"), Priority::Normal)).collect();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push_all(items).await });
        let mut keys = vec![];
        for _ in 0..2 {
            let (_, batch) = q.pop_batch().await.unwrap();
            keys.extend(batch.into_iter().map(|i| i.spec.key));
            q.producer_done();
        }
        assert!(pusher.await.unwrap().is_empty(), "everything fit once room was made");
        let left = q.close();
        keys.extend(left.into_iter().map(|i| i.spec.key));
        assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
        let refused = q.push_all(vec![item(0, "late", Priority::Normal)]).await;
        assert_eq!(refused.len(), 1);
    }

    #[tokio::test]
    async fn close_returns_what_was_queued_and_refuses_more() {
        let q = WorkQueue::new(vec![10, 10], 100);
        q.push_now(item(0, "a", Priority::High));
        q.push_now(item(1, "b", Priority::Low));
        assert_eq!(q.remove_plugin(1).len(), 1);
        assert_eq!(q.close().len(), 1);
        assert!(!q.push_now(item(0, "c", Priority::High)));
        assert!(q.pop_batch().await.is_none());
    }
}
