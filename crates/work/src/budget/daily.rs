//! Each client token's daily budget (`[auth] daily_budget_usd`, `daily_budget_tokens`).
//!
//! A client token's day is a UTC calendar day. Without a [`SpendLedger`] what it has spent is
//! kept in memory by each replica: several replicas each allow the whole budget, and a restart
//! forgets the day's spend. With one (Redis, for a fleet), each replica adds what it spent to
//! the ledger every [`SYNC_EVERY`] and counts what the ledger says the others spent: the fleet
//! shares one budget per token and day, and a restarted replica carries on from the day's spend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::{Amount, Budget, ClientDays, Limits};

/// Which configured client token a request carried (its place in `[auth] tokens`), set by the
/// authentication layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub usize);

/// Where a fleet keeps what each client token spent per day, so that every replica counts
/// what all of them spent.
pub trait SpendLedger: Send + Sync {
    /// Adds `delta` to what `client` (a stable name, never the token) spent on `day` (days
    /// since the Unix epoch, UTC) and answers the total for that day; `None` when the ledger
    /// cannot be reached (the last total heard stands in).
    fn add(&self, client: &str, day: u64, delta: Amount) -> BoxFuture<'_, Option<Amount>>;
}

/// How often each replica tells the ledger what it spent and hears what the others did.
pub const SYNC_EVERY: Duration = Duration::from_millis(250);

/// A client token's budget for one day.
struct Day {
    day: u64,
    budget: Arc<Budget>,
    /// What of this replica's spend the ledger has been told.
    told: Amount,
}

/// A client token's name (in the ledger, and in a job's record): the same on every replica,
/// and no way back to the token.
pub fn client_name(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("llm-judge client token\0{token}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// What every client token may spend per day, and what each has spent today.
pub struct DailyBudgets {
    limits: Limits,
    /// By client: its [`client_name`].
    names: Arc<[String]>,
    days: Mutex<HashMap<ClientId, Day>>,
    /// Wakes the sync ([`DailyBudgets::share`]) at once (a token's first request of the day on this replica).
    wake: Notify,
}

const DAY_S: u64 = 86_400;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DailyBudgets {
    /// `None` when no daily budget is configured. `names` are the tokens' [`client_name`]s, in
    /// the order of `[auth] tokens`.
    pub fn new(limits: Limits, names: Vec<String>) -> Option<Arc<DailyBudgets>> {
        (!limits.is_empty()).then(|| {
            Arc::new(DailyBudgets {
                limits,
                names: names.into(),
                days: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            })
        })
    }

    /// Shares every client token's day through `ledger`: a task (ended when the budgets are
    /// dropped) tells it what this replica spent and hears what the others did. Needs a tokio
    /// runtime.
    pub fn share(self: &Arc<Self>, ledger: Arc<dyn SpendLedger>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(d) = me.upgrade() else { return };
                d.sync(&*ledger).await;
                tokio::select! {
                    _ = d.wake.notified() => {}
                    _ = tokio::time::sleep(SYNC_EVERY) => {}
                }
            }
        });
    }

    /// Tells the ledger what each token spent here since last time, and takes what the
    /// others spent from its answer.
    async fn sync(&self, ledger: &dyn SpendLedger) {
        // Every configured token, whether or not it has sent anything here today: a replica
        // just started knows the day's spend before the token's first request.
        for i in 0..self.names.len() {
            self.day_of(ClientId(i), false);
        }
        let days: Vec<(ClientId, u64, Arc<Budget>, Amount)> = {
            let days = self.days.lock().unwrap_or_else(|p| p.into_inner());
            days.iter()
                .map(|(c, d)| (*c, d.day, d.budget.clone(), d.told))
                .collect()
        };
        for (client, day, budget, told) in days {
            let Some(name) = self.names.get(client.0) else {
                continue;
            };
            let delta = budget.spent_here().minus(told);
            let Some(total) = ledger.add(name, day, delta).await else {
                continue;
            };
            let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = days.get_mut(&client)
                && d.day == day
            {
                d.told = d.told.plus(delta);
                d.budget.set_elsewhere(total.minus(d.told));
            }
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The client's [`client_name`].
    pub fn name_of(&self, client: ClientId) -> Option<&str> {
        self.names.get(client.0).map(String::as_str)
    }

    /// The client's budget for today (a new one each UTC day).
    pub fn today(&self, client: ClientId) -> Arc<Budget> {
        self.day_of(client, true)
    }

    /// The client's budget for today; with `wake`, a new one has the sync ask the ledger at
    /// once.
    fn day_of(&self, client: ClientId, wake: bool) -> Arc<Budget> {
        let day = unix_now() / DAY_S;
        let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = || Day {
            day,
            budget: Budget::renewable(self.limits, "the client token's daily budget"),
            told: Amount::default(),
        };
        let mut new = false;
        let entry = days.entry(client).or_insert_with(|| {
            new = true;
            fresh()
        });
        if entry.day != day {
            new = true;
            *entry = fresh();
        }
        if new && wake {
            // What the rest of the fleet spent today is asked for at once.
            self.wake.notify_one();
        }
        entry.budget.clone()
    }
}

impl ClientDays for DailyBudgets {
    fn today_of(&self, client: &str) -> Option<Arc<Budget>> {
        let i = self.names.iter().position(|n| n == client)?;
        Some(self.today(ClientId(i)))
    }
}

/// Seconds until the next UTC midnight, when every daily budget starts again.
pub fn seconds_to_midnight() -> u64 {
    DAY_S - unix_now() % DAY_S
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_judge_pool::cost::Estimate;

    #[test]
    fn each_client_has_its_own_day() {
        let d = DailyBudgets::new(
            Limits {
                max_cost_usd: None,
                max_tokens: Some(10),
            },
            vec![client_name("a"), client_name("b")],
        )
        .unwrap();
        let a = d.today(ClientId(0));
        a.reserve(Estimate {
            cost_usd: None,
            tokens: 10,
        })
        .unwrap()
        .settle(None, 10);
        assert!(d.today(ClientId(0)).is_spent());
        assert!(!d.today(ClientId(1)).is_spent());
        assert!(DailyBudgets::new(Limits::default(), Vec::new()).is_none());
        // Named apart, by a digest that does not show the token.
        assert_ne!(client_name("a"), client_name("b"));
        assert!(!client_name("secret-token").contains("secret"));
        assert!(d.today_of(&client_name("b")).is_some_and(|b| !b.is_spent()));
        assert!(d.today_of(&client_name("a")).is_some_and(|b| b.is_spent()));
        assert!(d.today_of("someone-else").is_none());
        let secs = seconds_to_midnight();
        assert!((1..=DAY_S).contains(&secs));
    }
}
