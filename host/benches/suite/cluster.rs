//! Rows 10a–10d: a Redis Cluster of three masters started here, written by
//! a raw `redis` crate cluster client and by preheat (`kind =
//! "redis-cluster"`), both sending the same `SET NX EX` per key with 8 × 256
//! in flight (preheat's default `concurrency` × `batch_size`); keys/s and
//! the process's CPU time per key (user + sys, `getrusage`).

#[path = "../../../tests/e2e/cluster_nodes.rs"]
#[allow(clippy::duplicate_mod)]
mod cluster_nodes;

use super::{group, in_process_run_with_cpu, process_cpu_ns, raw_set, raw_writes, run_config, RAW_IN_FLIGHT};
use cluster_nodes::RedisCluster;
use std::path::Path;
use std::time::Instant;

/// Masters of the benchmark cluster (no replicas: the writes' cost, not replication's).
pub const MASTERS: usize = 3;

/// A throughput and its CPU time per key, or why it could not be measured.
pub type WithCpu = Result<(f64, f64, String), String>;

/// What one round measured: the raw cluster client and preheat.
pub struct Round {
    pub raw: WithCpu,
    pub preheat: WithCpu,
}

/// A started cluster and what the runs need.
pub struct Bench {
    cluster: RedisCluster,
}

impl Bench {
    /// Starts the cluster.
    pub fn start() -> Bench {
        Bench {
            cluster: RedisCluster::start(MASTERS, 0),
        }
    }

    /// `FLUSHALL` on every master, so each measurement writes into an empty cluster.
    fn flush(&self) {
        for node in &self.cluster.nodes {
            let _: () = redis::cmd("FLUSHALL")
                .arg("SYNC")
                .query(&mut node.conn())
                .expect("FLUSHALL on a benchmark cluster node");
        }
    }

    /// One round: the raw client, then preheat, each into an empty cluster.
    pub fn round(
        &self,
        rt: &tokio::runtime::Runtime,
        cache: &Path,
        dir: &Path,
        wasm: &Path,
        keys: u64,
        value_size: usize,
    ) -> Round {
        let raw = rt.block_on(raw_cluster_client(&self.cluster, keys, value_size));
        self.flush();
        let toml = run_config(&self.cluster.backend_toml(), cache, dir, wasm, keys, value_size);
        let preheat = rt.block_on(in_process_run_with_cpu(&toml, dir, false, keys));
        self.flush();
        Round { raw, preheat }
    }
}

/// `SET key value NX EX 3600` per key through the crate's `ClusterConnection`
/// (each routed to its slot's master), [`RAW_IN_FLIGHT`] tasks each with
/// [`super::RAW_PIPELINE`] commands in flight: what preheat's cluster backend sends.
async fn raw_cluster_client(cluster: &RedisCluster, keys: u64, value_size: usize) -> WithCpu {
    let conn = redis::cluster::ClusterClient::new(cluster.urls())
        .map_err(|e| e.to_string())?
        .get_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let cpu = process_cpu_ns();
    let started = Instant::now();
    raw_writes(vec![conn; RAW_IN_FLIGHT], keys, move |conn, range| async move {
        let sends = range.map(|i| {
            let mut conn = conn.clone();
            async move { raw_set(i, value_size).query_async::<redis::Value>(&mut conn).await }
        });
        let mut written = 0;
        for reply in futures_util::future::join_all(sends).await {
            written += u64::from(matches!(reply.map_err(|e| e.to_string())?, redis::Value::Okay));
        }
        Ok((conn, written))
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu_per_key = process_cpu_ns().saturating_sub(cpu) as f64 / keys as f64;
    Ok((keys as f64 / secs, cpu_per_key, String::new()))
}

/// The best round (by preheat's keys/s, then the raw client's, each kept with its CPU figure).
pub fn best(rounds: Vec<Round>) -> Round {
    let pick = |all: Vec<WithCpu>| -> WithCpu {
        let n = all.len();
        let shown: Vec<String> = all
            .iter()
            .map(|r| r.as_ref().map_or("failed".into(), |(v, _, _)| group(*v)))
            .collect();
        let first_error = all.iter().find_map(|r| r.as_ref().err().cloned());
        let (rate, cpu, note) = all
            .into_iter()
            .flatten()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .ok_or_else(|| first_error.unwrap_or_else(|| "no sample".into()))?;
        let note = if n > 1 {
            format!(
                "{note}{}best of {n}: {}",
                if note.is_empty() { "" } else { "; " },
                shown.join(", ")
            )
        } else {
            note
        };
        Ok((rate, cpu, note))
    };
    let (raw, preheat): (Vec<_>, Vec<_>) = rounds.into_iter().map(|r| (r.raw, r.preheat)).unzip();
    Round {
        raw: pick(raw),
        preheat: pick(preheat),
    }
}
