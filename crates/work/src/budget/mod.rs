//! Spend budgets: a cap in US dollars and in tokens on a batch, a `run` or a client token's day.
//!
//! Before an item is sent, the most it may cost (its [`Amount`] estimate: the prompt estimate at
//! the input price plus its whole completion budget at the output price) is reserved; the item is
//! sent only if what was spent, what is in flight and this estimate together stay within every
//! limit. When it finishes, its reservation is settled with what it really cost. So the spend
//! never exceeds a limit by more than the amount by which in-flight items outrun their estimates.
//!
//! An item that fits beside what is spent but not beside what is in flight as well is not
//! refused: it waits for the items in flight to settle ([`Budget::reserve_when_room`], or
//! [`Budget::try_reserve`] and [`Budget::room`] for a caller that keeps its own queue), since
//! they usually cost far less than their estimates. Only an item that cannot fit whatever
//! settles exhausts the budget. A budget refuses for good once it has refused once (`no further
//! item is sent`), unless made [`Budget::renewable`]: a client token's daily budget still takes
//! a small request after refusing a large one. A budget may sit under a parent (a batch under its client token's day):
//! a reservation is taken from both or from neither.
//!
//! The state is plain numbers ([`Amount`]), so a job can store what it has spent and carry on
//! with [`Budget::resume`] after a restart.

pub mod daily;

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The limits of a budget; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_cost_usd: Option<f64>,
    pub max_tokens: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.max_cost_usd.is_none() && self.max_tokens.is_none()
    }
}

/// Dollars and tokens: spent, in flight, or estimated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Amount {
    pub cost_usd: f64,
    pub tokens: u64,
}

impl Amount {
    /// What `self` has that `o` has not (never below zero).
    pub fn minus(mut self, o: Amount) -> Amount {
        self.sub(o);
        self
    }

    pub fn plus(mut self, o: Amount) -> Amount {
        self.add(o);
        self
    }

    fn add(&mut self, o: Amount) {
        self.cost_usd += o.cost_usd;
        self.tokens += o.tokens;
    }

    fn sub(&mut self, o: Amount) {
        self.cost_usd = (self.cost_usd - o.cost_usd).max(0.0);
        self.tokens = self.tokens.saturating_sub(o.tokens);
    }
}

pub use llm_judge_pool::cost::Estimate;

/// Each client token's budget for the day, looked up by the token's name (work that outlives
/// its request, a job, keeps the name of the token that sent it).
pub trait ClientDays: Send + Sync {
    /// Today's budget of the client named `client`; `None` for a name no configured token has.
    fn today_of(&self, client: &str) -> Option<Arc<Budget>>;
}

/// Why an item was not sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    pub message: String,
}

/// Why an item may not be sent now.
#[derive(Debug, Clone, PartialEq)]
pub enum NotYet {
    /// It fits once items in flight settle: ask again then ([`Budget::room`] says when).
    Wait,
    /// It cannot fit, whatever settles.
    Exhausted(Exhausted),
}

/// The stable error code of an item a budget did not let through.
pub const EXHAUSTED: &str = "budget_exhausted";

/// A budget shared by the items it covers.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    /// What the budget is, in messages ("the batch's budget").
    name: &'static str,
    /// False for a budget that keeps taking what fits after a refusal.
    sticky: bool,
    parent: Option<Arc<Budget>>,
    state: Mutex<State>,
    /// Woken whenever a reservation settles or is given back: room may have come.
    room: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct State {
    spent: Amount,
    /// Spent by others sharing the budget (the other replicas of a fleet, on a client token's
    /// day), as last heard.
    elsewhere: Amount,
    in_flight: Amount,
    /// Some item's actual cost was unknown (no price): `spent.cost_usd` leaves it out.
    unpriced: bool,
    /// Items refused.
    refused: usize,
    /// A sticky budget has refused: nothing more goes through.
    closed: bool,
}

/// A part of floating-point slack, so a budget spent to the cent is not refused by a rounding.
const SLACK: f64 = 1e-9;

impl Budget {
    /// A budget that stops for good at its first refusal.
    pub fn new(limits: Limits, name: &'static str) -> Arc<Budget> {
        Self::build(limits, name, true, None, Amount::default())
    }

    /// A budget that keeps letting through what still fits after a refusal.
    pub fn renewable(limits: Limits, name: &'static str) -> Arc<Budget> {
        Self::build(limits, name, false, None, Amount::default())
    }

    /// A sticky budget under `parent`: an item goes through only if both have room.
    pub fn under(limits: Limits, name: &'static str, parent: Arc<Budget>) -> Arc<Budget> {
        Self::build(limits, name, true, Some(parent), Amount::default())
    }

    /// A sticky budget that has already spent `spent` (work resumed after a restart).
    pub fn resume(limits: Limits, name: &'static str, spent: Amount) -> Arc<Budget> {
        Self::build(limits, name, true, None, spent)
    }

    /// [`Budget::resume`], under `parent` when there is one.
    pub fn resume_under(
        limits: Limits,
        name: &'static str,
        spent: Amount,
        parent: Option<Arc<Budget>>,
    ) -> Arc<Budget> {
        Self::build(limits, name, true, parent, spent)
    }

    fn build(
        limits: Limits,
        name: &'static str,
        sticky: bool,
        parent: Option<Arc<Budget>>,
        spent: Amount,
    ) -> Arc<Budget> {
        Arc::new(Budget {
            limits,
            name,
            sticky,
            parent,
            state: Mutex::new(State {
                spent,
                ..State::default()
            }),
            room: Arc::new(tokio::sync::Notify::new()),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `estimate` for an item about to be sent now, or says why it may not be: one that
    /// does not fit beside the items in flight is refused too (a single request does not wait).
    pub fn reserve(self: &Arc<Self>, estimate: Estimate) -> Result<Reservation, Exhausted> {
        self.reserve_as(estimate, false).map_err(|e| match e {
            NotYet::Exhausted(e) => e,
            NotYet::Wait => unreachable!("a reservation that may not wait is never told to"),
        })
    }

    /// Reserves `estimate`, or says that it fits once items in flight settle ([`NotYet::Wait`]:
    /// nothing is counted as refused) or cannot fit at all.
    pub fn try_reserve(self: &Arc<Self>, estimate: Estimate) -> Result<Reservation, NotYet> {
        self.reserve_as(estimate, true)
    }

    /// Reserves `estimate`, waiting while it fits only once items in flight have settled.
    pub async fn reserve_when_room(
        self: &Arc<Self>,
        estimate: Estimate,
    ) -> Result<Reservation, Exhausted> {
        loop {
            // Listening before asking, so that a settlement in between is not missed.
            let room = self.room();
            match self.try_reserve(estimate) {
                Ok(r) => return Ok(r),
                Err(NotYet::Exhausted(e)) => return Err(e),
                Err(NotYet::Wait) => room.await,
            }
        }
    }

    /// Resolves when a reservation of this budget (or of its parent) settles or is given back:
    /// an item told to wait may fit then. Made before asking, it misses no settlement between.
    pub fn room(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Registered here, not when first polled: a settlement from now on wakes it.
        let mine = self.room.clone().notified_owned();
        let theirs = self
            .parent
            .as_ref()
            .map(|p| p.room.clone().notified_owned());
        async move {
            match theirs {
                None => mine.await,
                Some(theirs) => tokio::select! { _ = mine => {}, _ = theirs => {} },
            }
        }
    }

    fn reserve_as(
        self: &Arc<Self>,
        estimate: Estimate,
        may_wait: bool,
    ) -> Result<Reservation, NotYet> {
        self.take(estimate, may_wait)?;
        if let Some(parent) = &self.parent
            && let Err(e) = parent.take(estimate, may_wait)
        {
            self.give_back(estimate, matches!(e, NotYet::Exhausted(_)));
            return Err(e);
        }
        Ok(Reservation {
            budget: self.clone(),
            estimate: amount(estimate),
            settled: false,
        })
    }

    /// Takes `estimate` from this budget alone. With `may_wait`, an estimate that fits beside
    /// what is spent but not beside what is in flight too is told to wait, not refused.
    fn take(&self, estimate: Estimate, may_wait: bool) -> Result<(), NotYet> {
        let mut s = self.lock();
        let why = if s.closed {
            Some((self.spent_message(&s, "is spent"), true))
        } else {
            self.refusal(&s, estimate, s.in_flight)
        };
        if let Some((message, closes)) = why {
            let settled_would_fit = !s.closed
                && s.in_flight != Amount::default()
                && self.refusal(&s, estimate, Amount::default()).is_none();
            if may_wait && settled_would_fit {
                return Err(NotYet::Wait);
            }
            s.refused += 1;
            s.closed |= self.sticky && closes;
            return Err(NotYet::Exhausted(Exhausted { message }));
        }
        s.in_flight.add(amount(estimate));
        Ok(())
    }

    /// Why `estimate` does not fit beside what is spent and `in_flight`, if it does not, and
    /// whether that closes a sticky budget (an item whose model has no price is refused alone:
    /// it says nothing of the others).
    fn refusal(&self, s: &State, estimate: Estimate, in_flight: Amount) -> Option<(String, bool)> {
        if let Some(max) = self.limits.max_cost_usd {
            let Some(cost) = estimate.cost_usd else {
                return Some((
                    format!(
                        "{} is in dollars and a model this item may use has no price in \
                         [prices]; the item was not sent",
                        self.name
                    ),
                    false,
                ));
            };
            let committed = s.spent.cost_usd + s.elsewhere.cost_usd + in_flight.cost_usd;
            if committed + cost > max * (1.0 + SLACK) + SLACK {
                return Some((
                    format!(
                        "{} of ${max} would be passed: ${committed:.6} is spent or in flight and \
                         this item may cost up to ${cost:.6}; the item was not sent",
                        self.name
                    ),
                    true,
                ));
            }
        }
        if let Some(max) = self.limits.max_tokens {
            let committed = s.spent.tokens + s.elsewhere.tokens + in_flight.tokens;
            if committed + estimate.tokens > max {
                return Some((
                    format!(
                        "{} of {max} tokens would be passed: {committed} are spent or in flight \
                         and this item may use up to {}; the item was not sent",
                        self.name, estimate.tokens
                    ),
                    true,
                ));
            }
        }
        None
    }

    fn spent_message(&self, s: &State, what: &str) -> String {
        format!(
            "{} {what} (${:.6} and {} tokens spent or in flight); the item was not sent",
            self.name,
            s.spent.cost_usd + s.elsewhere.cost_usd + s.in_flight.cost_usd,
            s.spent.tokens + s.elsewhere.tokens + s.in_flight.tokens
        )
    }

    /// Returns a reservation's estimate; with `refused`, the refusal counted by a parent is not
    /// this budget's: it is counted here as one too.
    fn give_back(&self, estimate: Estimate, refused: bool) {
        {
            let mut s = self.lock();
            s.in_flight.sub(amount(estimate));
            if refused {
                s.refused += 1;
                s.closed |= self.sticky;
            }
        }
        self.room.notify_waiters();
    }

    fn settle(&self, estimate: Amount, actual: Amount, priced: bool) {
        {
            let mut s = self.lock();
            s.in_flight.sub(estimate);
            s.spent.add(actual);
            s.unpriced |= !priced;
        }
        self.room.notify_waiters();
    }

    /// Counts spend made elsewhere (a server judging a part of this budget's items, sent there
    /// with [`Budget::remaining`] as its own limits).
    pub fn add_spent(&self, cost_usd: Option<f64>, tokens: u64) {
        self.settle(
            Amount::default(),
            Amount {
                cost_usd: cost_usd.unwrap_or(0.0),
                tokens,
            },
            cost_usd.is_some(),
        );
    }

    /// Counts items refused elsewhere on this budget's behalf; a sticky budget then closes.
    pub fn add_refused(&self, n: usize) {
        if n > 0 {
            let mut s = self.lock();
            s.refused += n;
            s.closed |= self.sticky;
        }
    }

    /// What is left of each limit after what is spent and in flight.
    pub fn remaining(&self) -> Limits {
        let s = self.lock();
        Limits {
            max_cost_usd: self.limits.max_cost_usd.map(|m| {
                (m - s.spent.cost_usd - s.elsewhere.cost_usd - s.in_flight.cost_usd).max(0.0)
            }),
            max_tokens: self.limits.max_tokens.map(|m| {
                m.saturating_sub(s.spent.tokens + s.elsewhere.tokens + s.in_flight.tokens)
            }),
        }
    }

    /// Whether the budget has refused for good.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// What has been spent (settled) here and, as last heard, elsewhere; without what is in
    /// flight.
    pub fn spent(&self) -> Amount {
        let s = self.lock();
        s.spent.plus(s.elsewhere)
    }

    /// What has been spent (settled) through this budget itself.
    pub fn spent_here(&self) -> Amount {
        self.lock().spent
    }

    /// What others sharing the budget have spent, as last heard (it replaces the last figure).
    pub fn set_elsewhere(&self, elsewhere: Amount) {
        self.lock().elsewhere = elsewhere;
    }

    /// Whether nothing more fits: the budget has closed, or a limit is reached by what is spent.
    pub fn is_spent(&self) -> bool {
        let s = self.lock();
        let spent = s.spent.plus(s.elsewhere);
        s.closed
            || self
                .limits
                .max_cost_usd
                .is_some_and(|m| spent.cost_usd >= m * (1.0 - SLACK))
            || self.limits.max_tokens.is_some_and(|m| spent.tokens >= m)
    }

    /// The budget as a summary reports it.
    pub fn report(&self) -> BudgetReport {
        let s = self.lock();
        BudgetReport {
            max_cost_usd: self.limits.max_cost_usd,
            max_tokens: self.limits.max_tokens,
            spent_cost_usd: (!s.unpriced).then_some(s.spent.cost_usd),
            spent_tokens: s.spent.tokens,
            exhausted: s.refused > 0,
            not_sent: s.refused,
        }
    }
}

fn amount(e: Estimate) -> Amount {
    Amount {
        cost_usd: e.cost_usd.unwrap_or(0.0),
        tokens: e.tokens,
    }
}

/// An item's share of a budget while it is in flight. Settled with what the item cost; dropped
/// unsettled (the work was cancelled mid-call), its whole estimate counts as spent, since the
/// provider may have billed the call.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    estimate: Amount,
    settled: bool,
}

impl Reservation {
    /// Settles with the item's real tokens and cost (`None`: the model has no price, and the
    /// estimate's cost is counted instead).
    pub fn settle(mut self, cost_usd: Option<f64>, tokens: u64) {
        self.settled = true;
        let actual = Amount {
            cost_usd: cost_usd.unwrap_or(self.estimate.cost_usd),
            tokens,
        };
        self.apply(actual, cost_usd.is_some());
    }

    fn apply(&self, actual: Amount, priced: bool) {
        self.budget.settle(self.estimate, actual, priced);
        if let Some(p) = &self.budget.parent {
            p.settle(self.estimate, actual, priced);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.apply(self.estimate, true);
        }
    }
}

/// A budget in a summary: its limits, what was spent, and whether it stopped the work.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct BudgetReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Dollars spent by the items that were sent (null when one of them had no price).
    pub spent_cost_usd: Option<f64>,
    pub spent_tokens: u64,
    /// True when the budget stopped the work: some items were not sent.
    pub exhausted: bool,
    /// Items not sent because of the budget (error entries with code `budget_exhausted`).
    pub not_sent: usize,
}

#[cfg(test)]
mod tests;
