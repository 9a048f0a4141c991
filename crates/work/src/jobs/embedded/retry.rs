//! Sending a finished job's errored items again, in the embedded store: their results removed,
//! the completion order of the results kept renumbered, and the job queued again, in one
//! transaction.

use redb::ReadableTable;

use super::Store;
use super::tables::{JOBS, ORDER, RESULTS, err, read_record, write_record};
use crate::jobs::record::JobRecord;
use crate::jobs::store::{Change, StoreError, is_error_result};

impl Store {
    /// See [`crate::jobs::JobStore::retry_errors`].
    pub fn retry_errors(
        &self,
        id: &str,
        change: &Change,
    ) -> Result<Option<(JobRecord, u64)>, StoreError> {
        self.write(|txn| {
            let mut record = {
                let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
                match jobs.get(id).map_err(err("read job"))? {
                    Some(b) => read_record(b.value())?,
                    None => return Ok(None),
                }
            };
            if !record.status.is_finished() {
                return Ok(Some((record, 0)));
            }
            let mut results = txn.open_table(RESULTS).map_err(err("open results"))?;
            let removed = results
                .extract_from_if((id, 0)..=(id, u64::MAX), |_, v| is_error_result(v))
                .map_err(err("remove results"))?
                .count() as u64;
            let kept = {
                let mut order = txn.open_table(ORDER).map_err(err("open order"))?;
                let mut kept: Vec<u64> = Vec::new();
                for row in order
                    .range((id, 0)..=(id, u64::MAX))
                    .map_err(err("scan order"))?
                {
                    let index = row.map_err(err("scan order"))?.1.value();
                    if results
                        .get((id, index))
                        .map_err(err("read result"))?
                        .is_some()
                    {
                        kept.push(index);
                    }
                }
                if removed > 0 {
                    order
                        .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                        .map_err(err("renumber order"))?;
                    for (seq, index) in kept.iter().enumerate() {
                        order
                            .insert((id, seq as u64), *index)
                            .map_err(err("renumber order"))?;
                    }
                }
                kept.len() as u64
            };
            record.committed = kept;
            if change(&mut record) {
                write_record(txn, &record)?;
            }
            Ok(Some((record, removed)))
        })
    }
}
