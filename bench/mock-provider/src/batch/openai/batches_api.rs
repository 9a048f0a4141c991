//! The endpoints of OpenAI's Batch API once a batch is made: get, cancel and list, each writing
//! the files of a batch that has come to its end.

use std::time::Duration;

use super::batch::Batch;
use super::output::write_files;
use super::respond::{list, refuse};
use super::state::Env;
use crate::batch::request::Request;
use crate::batch::stats::{Op, Side};
use crate::batch::wire;
use crate::reply::Reply;

/// Runs `answer` on batch `id` with the time elapsed since its creation, once any files it is
/// due are written.
pub fn with_batch(
    env: &Env<'_>,
    id: &str,
    answer: impl FnOnce(&mut Batch, Duration) -> Reply,
) -> Reply {
    let mut guard = env.lock();
    let state = &mut *guard;
    let Some(&index) = state.by_id.get(id) else {
        drop(guard);
        return refuse(
            env,
            404,
            &format!("No batch found with id '{id}'."),
            Some("batch_id"),
            None,
        );
    };
    let batch = &mut state.batches[index];
    let t = batch.created.elapsed();
    write_files(env.answers, &mut state.files, batch, t);
    answer(batch, t)
}

pub fn cancel(env: &Env<'_>, batch: &mut Batch, t: Duration) -> Reply {
    let status = batch.status(t);
    // 400, not 409: the official SDKs retry a 409.
    if status.over() {
        return refuse(
            env,
            400,
            &format!("Cannot cancel a batch with status '{}'.", status.name()),
            None,
            None,
        );
    }
    if batch.cancel.is_none() {
        batch.cancel = Some(t);
    }
    wire::json(200, &batch.render(t, false, env.answers))
}

/// `GET /v1/batches`: newest first, `limit` of them (20 unless given), after batch `after`.
pub fn list_batches(env: &Env<'_>, req: &Request) -> Reply {
    env.stats.count(Side::OpenAi, Op::Lists);
    let limit = match req.query("limit").map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return refuse(
                env,
                400,
                "Invalid 'limit': expected an integer from 1 to 100.",
                Some("limit"),
                Some("invalid_value"),
            );
        }
    };
    let mut guard = env.lock();
    let state = &mut *guard;
    let newest_first = (0..state.batches.len()).rev();
    let after = req
        .query("after")
        .and_then(|id| state.by_id.get(id).copied());
    let picked: Vec<usize> = newest_first
        .filter(|&i| after.is_none_or(|a| i < a))
        .collect();
    let mut data = Vec::new();
    for &i in picked.iter().take(limit) {
        let batch = &mut state.batches[i];
        let t = batch.created.elapsed();
        write_files(env.answers, &mut state.files, batch, t);
        data.push(batch.render(t, false, env.answers));
    }
    list(data, picked.len() > limit)
}
