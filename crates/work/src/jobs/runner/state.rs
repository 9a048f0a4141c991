//! What a job's runner works with once it has claimed the job ([`Run`]), and the items on their
//! way from the store to their commit ([`Flow`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::batch::Outage;
use crate::budget::{Budget, Reservation};
use crate::jobs::manager::{Jobs, LiveSummary, LiveWaiting};
use crate::jobs::provider_batch::Batches;
use crate::jobs::record::JobRecord;
use crate::jobs::store::{Done, WorkItem};

/// How often a fleet's runner looks at its job (a cancel from another replica, items to take
/// over).
const FLEET_TICK: Duration = Duration::from_millis(250);

/// One item being judged, into what is to be committed.
pub(super) type ItemFuture = BoxFuture<'static, Ended>;

/// What judging an item came to.
pub(super) struct Ended {
    /// Its result (for an item to be sent again, the error it got this time).
    pub(super) done: Done,
    /// Set when the item's route could not be served now: the item, to be sent again.
    pub(super) again: Option<(WorkItem, Outage)>,
    /// Set when the item has no result yet: its call waits in a provider batch (`done` holds
    /// its index and ticket only), and its budget reservation with it.
    pub(super) parked: Option<Option<Reservation>>,
}

/// An item whose call waits in one of the job's provider batches: all the runner keeps of it
/// until the batch gives back its outcome (the item itself is read from the store again then).
pub(super) struct Parked {
    pub(super) ticket: String,
    pub(super) reservation: Option<Reservation>,
    /// When its call was queued.
    pub(super) since: tokio::time::Instant,
}

/// At most this many items of provider batches are judged at once (queueing their calls, or
/// reading their batch's answers): items are taken from the store as these finish, so that a
/// job of a million items never holds more than this many in memory.
pub(super) const BATCHED_AT_ONCE: usize = 1024;

/// A job this runner has claimed, and what it works with until it ends.
pub(super) struct Run<'a> {
    pub(super) jobs: &'a Jobs,
    /// The job as claimed (in a fleet, as leased when it makes provider batches).
    pub(super) record: JobRecord,
    /// Other replicas run the same job.
    pub(super) fleet: bool,
    /// Cancelled when the job is (here or, in a fleet, anywhere), or is no longer running.
    pub(super) cancel: CancellationToken,
    /// Cancelled when another replica drives the job's provider batches now.
    pub(super) lease_lost: CancellationToken,
    /// What this runner counts, for the job's progress.
    pub(super) summary: LiveSummary,
    /// The job's budget, and its client token's day.
    pub(super) budget: Option<Arc<Budget>>,
    /// The job's provider batches, when it makes them.
    pub(super) batches: Option<Arc<Batches>>,
    /// While the job waits for its route's providers, what its progress says of it.
    pub(super) waiting: LiveWaiting,
    pub(super) started: Instant,
}

/// The items between the store and their commit, as the run loop moves them.
pub(super) struct Flow {
    /// At most this many items are judged at once.
    pub(super) max_c: usize,
    /// This many results waiting are committed at once.
    pub(super) flush_at_len: usize,
    /// The next index a single node's runner looks at.
    pub(super) cursor: u64,
    /// Items taken, with their budget reservations, waiting for an online slot.
    pub(super) buffer: VecDeque<(WorkItem, Option<Reservation>)>,
    /// Items taken that fit the budget once items in flight settle, in order: nothing more is
    /// taken while one waits.
    pub(super) deferred: VecDeque<WorkItem>,
    /// Items judged online: each holds a slot.
    pub(super) inflight: FuturesUnordered<ItemFuture>,
    /// Items of provider batches being judged (their call queued, or answered by their batch):
    /// they hold no slot, and are at most [`BATCHED_AT_ONCE`].
    pub(super) batched: FuturesUnordered<ItemFuture>,
    /// Items whose call waits in a provider batch, by index.
    pub(super) parked: HashMap<u64, Parked>,
    /// Outcomes a batch gave back for items not parked yet (after a restart, a batch found
    /// again may answer before all its items have been taken).
    pub(super) early: HashMap<u64, crate::jobs::provider_batch::Mail>,
    /// Outcomes of parked items, to be judged as room comes.
    pub(super) ready: VecDeque<(u64, crate::jobs::provider_batch::Mail)>,
    /// The tickets of items taken and not committed yet (touched, so that nobody takes them
    /// over meanwhile).
    pub(super) unacked: HashSet<String>,
    /// Results not committed yet.
    pub(super) pending: Vec<Done>,
    /// Results committed so far (also the next completion sequence number).
    pub(super) committed: u64,
    /// The store has no item left to hand out.
    pub(super) drained: bool,
    /// The store has nothing to hand out now: others hold the items in flight.
    pub(super) waiting: bool,
    /// When the results waiting are committed, at the latest.
    pub(super) flush_at: tokio::time::Instant,
    /// A fleet's runner looks at its job at every tick.
    pub(super) tick: tokio::time::Interval,
    /// How often a fleet's runner touches the items it holds.
    pub(super) touch_every: Duration,
    pub(super) touched: Instant,
    /// Items taken over from a replica that stopped answering.
    pub(super) claimed_counter: metrics::Counter,
    /// Set while the job waits for its route to be served again.
    pub(super) pause: Option<super::pause::Pause>,
    /// Items whose route could not be served, to be sent again once it can.
    pub(super) again: VecDeque<WorkItem>,
    /// How many times each item sent again was sent so far.
    pub(super) attempts: HashMap<u64, u32>,
    /// Why the job stopped waiting and failed, when it did.
    pub(super) gave_up: Option<String>,
}

impl Flow {
    /// Nothing taken yet; `committed` results were committed before.
    pub(super) fn new(run: &Run<'_>, committed: u64) -> Flow {
        let max_c = run.record.max_concurrent.max(1);
        // In a fleet an item's slot is held until its result is committed: the items a replica
        // holds unfinished (taken over by others if it dies) are never more than its share.
        let flush_at_len = if run.fleet {
            (max_c / 4).clamp(1, 256)
        } else {
            256
        };
        let mut tick = tokio::time::interval(FLEET_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let touch_every = run
            .jobs
            .store
            .claim_idle()
            .map_or(Duration::from_secs(10), |d| d / 3);
        Flow {
            max_c,
            flush_at_len,
            cursor: 0,
            buffer: VecDeque::new(),
            deferred: VecDeque::new(),
            inflight: FuturesUnordered::new(),
            batched: FuturesUnordered::new(),
            parked: HashMap::new(),
            early: HashMap::new(),
            ready: VecDeque::new(),
            unacked: HashSet::new(),
            pending: Vec::new(),
            committed,
            drained: false,
            waiting: false,
            flush_at: tokio::time::Instant::now() + run.jobs.settings.commit_interval,
            tick,
            touch_every,
            touched: Instant::now(),
            claimed_counter: metrics::counter!(llm_judge_metrics::JOB_ITEMS_CLAIMED),
            pause: None,
            again: VecDeque::new(),
            attempts: HashMap::new(),
            gave_up: None,
        }
    }

    /// The slots taken: items judged online and, in a fleet, results not committed yet.
    pub(super) fn busy(&self, fleet: bool) -> usize {
        self.inflight.len() + if fleet { self.pending.len() } else { 0 }
    }

    /// Whether nothing is being judged or waiting for a slot, for budget room or to be sent
    /// again.
    pub(super) fn is_idle(&self) -> bool {
        self.inflight.is_empty()
            && self.buffer.is_empty()
            && self.batched.is_empty()
            && self.deferred.is_empty()
            && self.again.is_empty()
            && self.parked.is_empty()
            && self.ready.is_empty()
    }
}
