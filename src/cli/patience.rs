//! Outages `llm-judge run` waits out when it judges in this process: an item whose route cannot
//! be served now (every step unreachable, timing out, rate-limited or refused by an open
//! circuit) is sent again after a growing wait (1 s, doubling to 15 s, jittered) instead of
//! being written as an error, up to [`MAX_SENDS`] sends; the progress line says why it waits.
//! The providers' circuit breakers keep the calls few meanwhile: an open circuit refuses them
//! here, without a call.

use std::sync::Mutex;
use std::time::Duration;

use llm_judge_judge::Judge;
use llm_judge_pool::Via;
use llm_judge_work::batch::{self, BatchItem, Entry};

/// Sends of one item while its route cannot be served, before it is written as an error (as
/// the service's `jobs.max_item_attempts` default).
pub const MAX_SENDS: u32 = 10;
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(15);

/// Items waiting for their route, and why the last one waits.
#[derive(Default)]
pub struct Patience {
    waiting: Mutex<(usize, Option<String>)>,
}

impl Patience {
    /// Why items wait now (`None`: none does).
    pub fn waiting(&self) -> Option<String> {
        let (n, why) = &*self.waiting.lock().unwrap();
        (*n > 0).then(|| {
            let why = why.as_deref().unwrap_or("the route cannot be served");
            format!("{n} items wait for the route ({why})")
        })
    }

    /// Judges one item, sending it again while its route cannot be served.
    pub async fn judge(&self, judge: &Judge, route: &str, index: usize, item: BatchItem) -> Entry {
        let mut wait = FIRST_WAIT;
        let mut sent = 1;
        loop {
            let entry = batch::judge_one(judge, route, index, item.clone(), &Via::Online).await;
            let Some(outage) = &entry.outage else {
                return entry;
            };
            if sent >= MAX_SENDS {
                return entry;
            }
            {
                let mut w = self.waiting.lock().unwrap();
                w.0 += 1;
                w.1 = Some(outage.reason.clone());
            }
            tokio::time::sleep(wait.mul_f64(rand::random_range(0.8..1.2))).await;
            self.waiting.lock().unwrap().0 -= 1;
            wait = (wait * 2).min(LONGEST_WAIT);
            sent += 1;
        }
    }
}
