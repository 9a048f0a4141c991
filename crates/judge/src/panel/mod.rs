//! Panels of judges: one item asked of several routes (ideally models of different families),
//! their verdicts combined into the panel's own by a fixed rule.
//!
//! A judge that fails (every provider of its route failed) or gives no verdict (unscored) is
//! absent. With fewer than `quorum` judges present the item is unscored, reason
//! `quorum_not_met`; an even split is decided by `on_tie` (default: unscored, reason
//! `panel_tie`). With `escalate`, the first two judges are asked; the others only when those two
//! disagree or one of them is absent.
//!
//! How each aggregate reads the votes (binary 1/0; pairwise A's share 1, 0 or 0.5; scores):
//! - `majority`: the verdict most judges gave; for scores, the median.
//! - `mean`: binary correct above one half; pairwise A above one half, B below, a tie at one
//!   half; scores, the mean.
//! - `min`: binary correct only when every judge says so; scores, the lowest; pairwise as
//!   `unanimous`.
//! - `unanimous`: the verdict every judge gave; any disagreement goes to `on_tie`.
//!
//! For a split, `on_tie = "incorrect"` is the pessimistic outcome (binary incorrect, scores the
//! lowest given) and `"correct"` the optimistic one (binary correct, scores the highest); for
//! pairwise both make the winner a tie.
//!
//! The panel's `agreement` is the share of present judges whose verdict is the panel's (for a
//! split, the largest faction's share); for scores without a pass mark, 1 minus the judges'
//! mean distance from the panel's score as a fraction of the scale. It is also the panel's
//! `confidence`, with `confidence_source: "panel"`.

mod ballot;
mod combine;
mod judgment;
mod kinds;
mod members;

pub use crate::judgment::{PanelReport, PanelVote, VoteError};
pub use combine::{Outcome, VoteKind, combine};
