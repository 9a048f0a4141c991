//! The daily spend ledger's contract (`SpendLedger`), run against the fleet's ledger in Redis
//! (a single node keeps each token's day in `DailyBudgets` itself, with no ledger): `add`
//! answers the running total of a client's day, clients and days are counted apart, every
//! replica's handle adds to and hears the one total, and a ledger that cannot be reached answers
//! `None` until it answers again.

use std::sync::Arc;
use std::time::Duration;

use llm_judge_work::budget::Amount;
use llm_judge_work::budget::daily::SpendLedger;
use tokio::sync::Mutex;

use crate::support::RedisServer;
use crate::within;

contract! {
    cases: [
        add_answers_the_running_total_of_the_day,
        clients_and_days_are_counted_apart,
        every_replica_adds_to_and_hears_one_total,
        a_ledger_out_of_reach_answers_none_until_it_answers_again,
    ],
    implementations: { redis: open_redis }
}

/// Opens a ledger as each replica does; and stops and restarts what it keeps its figures in.
struct Subject {
    server: Mutex<RedisServer>,
}

impl Subject {
    /// A replica's handle on the ledger.
    async fn open(&self) -> Arc<dyn SpendLedger> {
        let redis = crate::redis_handle(&*self.server.lock().await, "");
        Arc::new(llm_judge_fleet::spend::RedisSpend::new(redis))
    }

    async fn outage(&self) {
        self.server.lock().await.stop();
    }

    async fn back(&self) {
        self.server.lock().await.restart().await;
    }
}

async fn open_redis() -> Option<Subject> {
    Some(Subject {
        server: Mutex::new(RedisServer::start().await?),
    })
}

const DAY: u64 = 20_000;

fn spent(cost_usd: f64, tokens: u64) -> Amount {
    Amount { cost_usd, tokens }
}

async fn add_answers_the_running_total_of_the_day(s: &Subject) {
    let ledger = s.open().await;
    assert_eq!(
        ledger.add("a", DAY, spent(0.5, 100)).await,
        Some(spent(0.5, 100))
    );
    assert_eq!(
        ledger.add("a", DAY, spent(0.25, 20)).await,
        Some(spent(0.75, 120))
    );
    // Nothing spent: how a replica hears what the others spent.
    assert_eq!(
        ledger.add("a", DAY, Amount::default()).await,
        Some(spent(0.75, 120))
    );
}

async fn clients_and_days_are_counted_apart(s: &Subject) {
    let ledger = s.open().await;
    ledger.add("a", DAY, spent(1.0, 10)).await.unwrap();
    assert_eq!(
        ledger.add("b", DAY, spent(2.0, 20)).await,
        Some(spent(2.0, 20))
    );
    assert_eq!(
        ledger.add("a", DAY + 1, spent(4.0, 40)).await,
        Some(spent(4.0, 40))
    );
    assert_eq!(
        ledger.add("a", DAY, Amount::default()).await,
        Some(spent(1.0, 10))
    );
}

async fn every_replica_adds_to_and_hears_one_total(s: &Subject) {
    let (one, two) = (s.open().await, s.open().await);
    one.add("a", DAY, spent(0.5, 5)).await.unwrap();
    assert_eq!(
        two.add("a", DAY, spent(0.25, 3)).await,
        Some(spent(0.75, 8))
    );
    // A replica started later (or again) hears the day's spend before it spends anything.
    let later = s.open().await;
    assert_eq!(
        later.add("a", DAY, Amount::default()).await,
        Some(spent(0.75, 8))
    );
}

async fn a_ledger_out_of_reach_answers_none_until_it_answers_again(s: &Subject) {
    let ledger = s.open().await;
    ledger.add("a", DAY, spent(1.0, 10)).await.unwrap();
    s.outage().await;
    let asked = std::time::Instant::now();
    assert_eq!(ledger.add("a", DAY, spent(1.0, 10)).await, None);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "an unreachable ledger answers within its timeout, not {:?}",
        asked.elapsed()
    );
    s.back().await;
    let heard = within(
        "the ledger to answer again",
        Duration::from_secs(15),
        async || ledger.add("a", DAY, Amount::default()).await,
    )
    .await;
    assert_eq!(
        ledger.add("a", DAY, spent(0.5, 5)).await,
        Some(spent(heard.cost_usd + 0.5, heard.tokens + 5))
    );
}
