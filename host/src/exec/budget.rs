//! The memory budget: how many bytes of produced values may be in flight.

use crate::config::MemoryBudget;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Budget accounting unit (permits are KiB so a u32 reservation covers 4 TiB).
const UNIT: u64 = 1024;

/// Bytes of memory this process may use: `MemAvailable`, lowered by a cgroup limit when present.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    // cgroup v2, then v1; "max" (or a huge v1 number) parses as no limit.
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .map(|max| max.saturating_sub(read("/sys/fs/cgroup/memory.current").unwrap_or(0)))
        .or_else(|| {
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
                .filter(|&l| l < 1 << 60)
                .map(|l| l.saturating_sub(read("/sys/fs/cgroup/memory/memory.usage_in_bytes").unwrap_or(0)))
        });
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Resolves the configured budget to bytes (at least 16 MiB).
pub fn budget_bytes(budget: MemoryBudget) -> u64 {
    let bytes = match budget {
        MemoryBudget::Bytes(b) => b.0,
        MemoryBudget::Percent(p) => (available_memory().unwrap_or(1 << 30) as f64 * p / 100.0) as u64,
    };
    bytes.max(16 << 20)
}

/// A byte budget shared by the workers of a run.
pub struct ByteBudget {
    permits: Semaphore,
    total_units: u32,
}

impl ByteBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> ByteBudget {
        let total_units = (bytes / UNIT).clamp(1, u32::MAX as u64) as u32;
        ByteBudget {
            permits: Semaphore::new(total_units as usize),
            total_units,
        }
    }

    /// Waits until `bytes` fit in the budget (a request above the whole budget waits for all of it).
    pub async fn reserve(&self, bytes: u64) -> SemaphorePermit<'_> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.total_units as u64) as u32;
        self.permits
            .acquire_many(units)
            .await
            .expect("the budget semaphore is never closed")
    }

    /// Gives back what `permit` holds beyond `bytes` (the reservation was a worst case).
    pub fn shrink(permit: &mut SemaphorePermit<'_>, bytes: u64) {
        let keep = bytes.div_ceil(UNIT).max(1) as usize;
        if permit.num_permits() > keep {
            drop(permit.split(permit.num_permits() - keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    #[test]
    fn budgets_resolve_to_bytes() {
        assert_eq!(budget_bytes(MemoryBudget::Bytes(ByteSize(64 << 20))), 64 << 20);
        assert_eq!(budget_bytes(MemoryBudget::Bytes(ByteSize(1))), 16 << 20);
        let half = budget_bytes(MemoryBudget::Percent(50.0));
        assert!(half >= 16 << 20);
        assert!(half <= available_memory().unwrap());
    }

    #[tokio::test]
    async fn reservations_wait_for_room() {
        let budget = ByteBudget::new(4 * UNIT);
        let a = budget.reserve(3 * UNIT).await;
        assert!(budget.permits.try_acquire_many(2).is_err());
        drop(a);
        // A request larger than the whole budget still proceeds alone.
        let _big = budget.reserve(100 * UNIT).await;
        assert_eq!(budget.permits.available_permits(), 0);
    }

    #[tokio::test]
    async fn a_worst_case_reservation_shrinks_to_what_was_produced() {
        let budget = ByteBudget::new(100 * UNIT);
        let mut permit = budget.reserve(60 * UNIT).await;
        ByteBudget::shrink(&mut permit, 10 * UNIT + 1);
        assert_eq!(budget.permits.available_permits(), 89);
        ByteBudget::shrink(&mut permit, 0);
        assert_eq!(budget.permits.available_permits(), 99);
        drop(permit);
        assert_eq!(budget.permits.available_permits(), 100);
    }
}
