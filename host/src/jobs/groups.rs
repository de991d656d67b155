//! Run groups: the shards of one run split across workers (`--shard I/N
//! --group G`), each recorded as its own run, judged together: which shards
//! finished, which are missing or failed and must be rerun.

use super::JobRow;
use serde::Serialize;

/// How a run group stands, judged by each shard's newest attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// Every shard's newest attempt completed.
    Completed,
    /// Some shard is running.
    Running,
    /// Some shard never ran (none running).
    Incomplete,
    /// Some shard's newest attempt did not complete, others did.
    Partial,
    /// No shard's newest attempt completed.
    Failed,
}

/// One shard of a group: its attempts, newest last.
#[derive(Debug, Clone, Serialize)]
pub struct ShardAttempts {
    /// The shard, 0-based.
    pub index: u32,
    /// Whether it is done: its newest attempt completed and none is running.
    pub completed: bool,
    /// Its runs, oldest first (empty: it never ran).
    pub attempts: Vec<JobRow>,
}

impl ShardAttempts {
    /// The newest attempt.
    pub fn latest(&self) -> Option<&JobRow> {
        self.attempts.last()
    }

    /// Whether an attempt is still running.
    pub fn running(&self) -> bool {
        self.attempts.iter().any(|r| r.status == "running")
    }
}

/// The shards of one run group, as `preheat status --group` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct RunGroup {
    /// The group's name.
    pub group: String,
    /// Shards the run is split into (its newest run's count).
    pub count: u32,
    /// How it stands.
    pub status: GroupStatus,
    /// Every shard, in order.
    pub shards: Vec<ShardAttempts>,
    /// Runs of the group split another way (a reused group name), left out.
    pub other_splits: Vec<JobRow>,
}

impl RunGroup {
    /// The group made of `rows` (its run rows, oldest first); `None` when empty.
    pub fn of(group: &str, rows: Vec<JobRow>) -> Option<RunGroup> {
        let count = rows.last()?.shard_count.unwrap_or(1).max(1);
        let mut shards: Vec<ShardAttempts> = (0..count)
            .map(|index| ShardAttempts {
                index,
                completed: false,
                attempts: Vec::new(),
            })
            .collect();
        let mut other_splits = Vec::new();
        for row in rows {
            match row.shard_index {
                Some(i) if row.shard_count == Some(count) && i < count => shards[i as usize].attempts.push(row),
                _ => other_splits.push(row),
            }
        }
        for shard in &mut shards {
            shard.completed = !shard.running() && shard.latest().is_some_and(|r| r.status == "completed");
        }
        let status = if shards.iter().any(ShardAttempts::running) {
            GroupStatus::Running
        } else if shards.iter().any(|s| s.attempts.is_empty()) {
            GroupStatus::Incomplete
        } else if shards.iter().all(|s| s.completed) {
            GroupStatus::Completed
        } else if shards
            .iter()
            .any(|s| s.completed || s.latest().is_some_and(|r| r.status == "partial"))
        {
            GroupStatus::Partial
        } else {
            GroupStatus::Failed
        };
        Some(RunGroup {
            group: group.to_string(),
            count,
            status,
            shards,
            other_splits,
        })
    }

    /// The shards to rerun: not running, and not completed.
    pub fn to_rerun(&self) -> Vec<u32> {
        self.shards
            .iter()
            .filter(|s| !s.completed && !s.running())
            .map(|s| s.index)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, index: u32, count: u32, status: &str) -> JobRow {
        JobRow {
            id,
            run_id: format!("r{id}"),
            job_type: super::super::RUN_JOB.into(),
            strategy: "proactive".into(),
            status: status.into(),
            metadata: serde_json::json!({}),
            error_message: None,
            started_at: None,
            completed_at: None,
            updated_at: String::new(),
            run_group: Some("g".into()),
            shard_index: Some(index),
            shard_count: Some(count),
        }
    }

    fn status(rows: Vec<JobRow>) -> (GroupStatus, Vec<u32>) {
        let group = RunGroup::of("g", rows).unwrap();
        (group.status, group.to_rerun())
    }

    #[test]
    fn a_group_is_done_when_every_shards_newest_attempt_completed() {
        let done = |i| row(i as i64, i, 3, "completed");
        assert_eq!(
            status(vec![done(0), done(1), done(2)]),
            (GroupStatus::Completed, vec![])
        );
        // Shard 1 was killed, then rerun alone: the rerun counts.
        let rows = vec![done(0), row(5, 1, 3, "interrupted"), done(2), row(9, 1, 3, "completed")];
        assert_eq!(status(rows), (GroupStatus::Completed, vec![]));
        // A later failed attempt undoes an earlier success.
        let rows = vec![done(0), row(5, 1, 3, "completed"), done(2), row(9, 1, 3, "failed")];
        assert_eq!(status(rows), (GroupStatus::Partial, vec![1]));
        assert_eq!(status(vec![done(0), done(2)]), (GroupStatus::Incomplete, vec![1]));
        let rows = vec![row(1, 0, 3, "running"), done(2)];
        assert_eq!(status(rows), (GroupStatus::Running, vec![1]));
        // A skipped attempt (its lock was held) beside a running one: running.
        let rows = vec![done(0), row(4, 1, 3, "running"), row(5, 1, 3, "skipped"), done(2)];
        assert_eq!(status(rows), (GroupStatus::Running, vec![]));
        let failed = |i| row(i as i64, i, 2, "failed");
        assert_eq!(status(vec![failed(0), failed(1)]), (GroupStatus::Failed, vec![0, 1]));
    }

    #[test]
    fn runs_of_a_reused_group_name_split_another_way_are_left_out() {
        let group = RunGroup::of(
            "g",
            vec![
                row(1, 3, 4, "completed"),
                row(2, 0, 2, "completed"),
                row(3, 1, 2, "completed"),
            ],
        )
        .unwrap();
        assert_eq!((group.count, group.status), (2, GroupStatus::Completed));
        assert_eq!(group.other_splits.len(), 1);
        assert!(RunGroup::of("g", vec![]).is_none());
    }
}
