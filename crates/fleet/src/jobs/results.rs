//! Reading a fleet's job results: by index or in completion order, a window at a time, and
//! all of them counted into a summary a page at a time.

use serde_json::Value;

use super::RedisJobs;
use super::reply::store_error;
use llm_judge_work::batch::Summary;
use llm_judge_work::jobs::store::{StoreError, Stored};

impl RedisJobs {
    /// Up to `limit` results after completion sequence `after`, in completion order; each with
    /// its sequence number.
    pub(super) async fn results_by_completion(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let results = self.part(id, "res");
        let start = after.map_or(0, |a| a.saturating_add(1));
        let order = self.part(id, "ord");
        let stop = start.saturating_add(limit.max(1) as u64 - 1);
        let (indices, values): (Vec<String>, Vec<Option<Vec<u8>>>) = self
            .redis
            .call_unchecked("job_results", |mut c| async move {
                let indices: Vec<String> = redis::cmd("LRANGE")
                    .arg(&order)
                    .arg(start)
                    .arg(stop)
                    .query_async(&mut c)
                    .await?;
                if indices.is_empty() {
                    return Ok((indices, Vec::new()));
                }
                let values = redis::cmd("HMGET")
                    .arg(&results)
                    .arg(&indices)
                    .query_async(&mut c)
                    .await?;
                Ok((indices, values))
            })
            .await
            .map_err(store_error("read results"))?;
        Ok((start..)
            .zip(indices.iter().zip(values))
            .filter_map(|(seq, (_, v))| Some((seq, v?)))
            .collect())
    }

    /// Up to `limit` results after index `after`, in index order.
    pub(super) async fn results_by_index(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let results = self.part(id, "res");
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        let total = self.read(id).await?.map_or(0, |(r, _)| r.total);
        let mut from = after.map_or(0, |a| a + 1);
        let mut out = Vec::new();
        // Windows of indices, skipping those with no result yet.
        while from < total && out.len() < limit {
            let to = (from + 1000).min(total);
            let fields: Vec<u64> = (from..to).collect();
            let key = results.clone();
            let values: Vec<Option<Vec<u8>>> = self
                .redis
                .call_unchecked("job_results", |mut c| async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg(&fields)
                        .query_async(&mut c)
                        .await
                })
                .await
                .map_err(store_error("read results"))?;
            for (i, v) in (from..to).zip(values) {
                if let Some(v) = v {
                    out.push((i, v));
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            from = to;
        }
        Ok(out)
    }

    /// Counts every stored result of a job into `summary`, a page at a time.
    pub(super) async fn summarize_results(
        &self,
        id: &str,
        mut summary: Summary,
    ) -> Result<Summary, StoreError> {
        let key = self.part(id, "res");
        let mut cursor = 0u64;
        loop {
            let k = key.clone();
            let (next, page): (u64, Vec<(String, Vec<u8>)>) = self
                .redis
                .call_unchecked("job_summary", |mut c| async move {
                    redis::cmd("HSCAN")
                        .arg(k)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                })
                .await
                .map_err(store_error("read results"))?;
            for (_, v) in &page {
                summary.add(&serde_json::from_slice::<Value>(v).unwrap_or(Value::Null));
            }
            if next == 0 {
                return Ok(summary);
            }
            cursor = next;
        }
    }
}
