//! A batch's bias figures: position bias of pairwise judgments (orders that disagree, the
//! first position preferred) and length bias of scores.

use serde::Serialize;
use utoipa::ToSchema;

use super::tally::Position;
use llm_judge_judge::stats::{Correlation, round6};

/// Position bias of a pairwise batch.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PositionBias {
    /// Of the items asked in both orders (`swap`) with both answers read, the share whose two
    /// orders chose different winners; null when there were none.
    pub flip_rate: Option<f64>,
    /// Of the answers that preferred a position (ties left out), in every order asked, the
    /// share that preferred the response shown first (0.5 is no bias); null when none did.
    pub first_position_rate: Option<f64>,
    /// Items asked in both orders with both answers read.
    pub swapped: usize,
    /// Answers that preferred a position.
    pub decisions: usize,
    #[serde(skip)]
    flips: usize,
    #[serde(skip)]
    firsts: usize,
}

impl PositionBias {
    pub(super) fn count(&mut self, consistent: Option<bool>, positions: &[Position]) {
        if let Some(c) = consistent {
            self.swapped += 1;
            self.flips += usize::from(!c);
        }
        for p in positions {
            match p {
                Position::First => {
                    self.decisions += 1;
                    self.firsts += 1;
                }
                Position::Second => self.decisions += 1,
                Position::Tie | Position::Unread => {}
            }
        }
    }

    pub(super) fn finish(&mut self) {
        let rate = |n: usize, d: usize| (d > 0).then(|| round6(n as f64 / d as f64));
        self.flip_rate = rate(self.flips, self.swapped);
        self.first_position_rate = rate(self.firsts, self.decisions);
    }
}

/// Length bias of a score batch.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LengthBias {
    /// Pearson's correlation of the score with the rated response's length in characters (a
    /// judge that rewards length shows a large positive value); null with fewer than two scores
    /// or when every score or length is the same.
    pub score_length_correlation: Option<f64>,
    /// Scored items counted.
    pub items: usize,
    #[serde(skip)]
    pub(super) corr: Correlation,
}
