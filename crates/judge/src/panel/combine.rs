//! How a panel combines its judges' votes into its outcome and agreement, by the aggregate and
//! the tie rule it is configured with.

use crate::settings::{Aggregate, OnTie, PanelSettings};

/// What kind of vote the judges cast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VoteKind {
    /// 1 correct, 0 incorrect.
    Binary,
    /// Response A's share: 1 A better, 0 B better, 0.5 a tie.
    Pairwise,
    /// A score on the item's scale.
    Score { min: f64, max: f64 },
}

/// What the panel decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Value(f64),
    /// An even split (or a disagreement, for `unanimous`), left unscored.
    Tie,
    QuorumNotMet,
}

/// Two votes are the same, within rounding.
pub(super) fn same(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The panel's outcome and agreement over the votes of the judges present.
pub fn combine(kind: VoteKind, votes: &[f64], s: &PanelSettings) -> (Outcome, Option<f64>) {
    if votes.is_empty() || votes.len() < s.quorum {
        return (Outcome::QuorumNotMet, None);
    }
    match kind {
        VoteKind::Score { min, max } => combine_scores(votes, s, min, max),
        VoteKind::Binary | VoteKind::Pairwise => combine_labels(kind, votes, s),
    }
}

fn combine_labels(kind: VoteKind, votes: &[f64], s: &PanelSettings) -> (Outcome, Option<f64>) {
    // Distinct labels with their counts, in the order first seen.
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for &v in votes {
        match counts.iter_mut().find(|(l, _)| same(*l, v)) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let top = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let leaders: Vec<f64> = counts
        .iter()
        .filter(|(_, n)| *n == top)
        .map(|(l, _)| *l)
        .collect();
    let unanimous = counts.len() == 1;
    let split = || match (s.on_tie, kind) {
        (OnTie::Unscored, _) => Outcome::Tie,
        (_, VoteKind::Pairwise) => Outcome::Value(0.5),
        (OnTie::Incorrect, _) => Outcome::Value(0.0),
        (OnTie::Correct, _) => Outcome::Value(1.0),
    };
    let mean = votes.iter().sum::<f64>() / votes.len() as f64;
    let outcome = match (s.aggregate, kind) {
        (Aggregate::Majority, _) if leaders.len() == 1 => Outcome::Value(leaders[0]),
        (Aggregate::Majority, _) => split(),
        (Aggregate::Mean, VoteKind::Pairwise) if same(mean, 0.5) => Outcome::Value(0.5),
        (Aggregate::Mean, _) if same(mean, 0.5) => split(),
        (Aggregate::Mean, _) if mean > 0.5 => Outcome::Value(1.0),
        (Aggregate::Mean, _) => Outcome::Value(0.0),
        (Aggregate::Min, VoteKind::Binary) => {
            Outcome::Value(votes.iter().copied().fold(1.0, f64::min))
        }
        (Aggregate::Min | Aggregate::Unanimous, _) if unanimous => Outcome::Value(votes[0]),
        (Aggregate::Min | Aggregate::Unanimous, _) => split(),
    };
    let share = |v: f64| votes.iter().filter(|x| same(**x, v)).count() as f64 / votes.len() as f64;
    let agreement = match outcome {
        Outcome::Value(v) => share(v),
        _ => top as f64 / votes.len() as f64,
    };
    (outcome, Some(agreement))
}

fn combine_scores(votes: &[f64], s: &PanelSettings, min: f64, max: f64) -> (Outcome, Option<f64>) {
    let mut sorted = votes.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let (lowest, highest) = (sorted[0], sorted[n - 1]);
    let outcome = match s.aggregate {
        Aggregate::Majority => Outcome::Value(median),
        Aggregate::Mean => Outcome::Value(votes.iter().sum::<f64>() / n as f64),
        Aggregate::Min => Outcome::Value(lowest),
        Aggregate::Unanimous if same(lowest, highest) => Outcome::Value(lowest),
        Aggregate::Unanimous => match s.on_tie {
            OnTie::Unscored => Outcome::Tie,
            OnTie::Incorrect => Outcome::Value(lowest),
            OnTie::Correct => Outcome::Value(highest),
        },
    };
    let centre = match outcome {
        Outcome::Value(v) => v,
        _ => median,
    };
    let spread = votes.iter().map(|v| (v - centre).abs()).sum::<f64>() / n as f64;
    let agreement = (1.0 - spread / (max - min)).clamp(0.0, 1.0);
    (outcome, Some(agreement))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(aggregate: Aggregate, quorum: usize, on_tie: OnTie) -> PanelSettings {
        PanelSettings {
            judges: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            aggregate,
            quorum,
            on_tie,
            escalate: false,
        }
    }

    #[test]
    fn binary_aggregates() {
        use Aggregate::*;
        let p = |a| panel(a, 1, OnTie::Unscored);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Majority)).0,
            Outcome::Value(1.0)
        );
        let (o, agree) = combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Majority));
        assert_eq!(o, Outcome::Value(1.0));
        assert!((agree.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0], &p(Majority)),
            (Outcome::Tie, Some(0.5))
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Min)).0,
            Outcome::Value(0.0)
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0], &p(Min)).0,
            Outcome::Value(1.0)
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Unanimous)).0,
            Outcome::Tie
        );
        assert_eq!(
            combine(VoteKind::Binary, &[0.0, 0.0], &p(Unanimous)),
            (Outcome::Value(0.0), Some(1.0))
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0, 0.0], &p(Mean)).0,
            Outcome::Value(0.0)
        );
        // on_tie decides splits.
        let pessimist = panel(Majority, 1, OnTie::Incorrect);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0], &pessimist).0,
            Outcome::Value(0.0)
        );
        let optimist = panel(Unanimous, 1, OnTie::Correct);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0, 0.0], &optimist).0,
            Outcome::Value(1.0)
        );
    }

    #[test]
    fn quorum_counts_present_judges_only() {
        let p = panel(Aggregate::Majority, 3, OnTie::Unscored);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0], &p),
            (Outcome::QuorumNotMet, None)
        );
        assert_eq!(
            combine(
                VoteKind::Binary,
                &[],
                &panel(Aggregate::Majority, 1, OnTie::Unscored)
            )
            .0,
            Outcome::QuorumNotMet
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p).0,
            Outcome::Value(1.0)
        );
    }

    #[test]
    fn pairwise_and_score_aggregates() {
        use Aggregate::*;
        let p = |a| panel(a, 1, OnTie::Unscored);
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.5, 1.0], &p(Majority)).0,
            Outcome::Value(1.0)
        );
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.0, 0.5], &p(Majority)).0,
            Outcome::Tie
        );
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.0], &p(Mean)).0,
            Outcome::Value(0.5)
        );
        let tie_winner = panel(Majority, 1, OnTie::Incorrect);
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.0], &tie_winner).0,
            Outcome::Value(0.5)
        );
        let scale = VoteKind::Score {
            min: 1.0,
            max: 10.0,
        };
        assert_eq!(
            combine(scale, &[2.0, 9.0, 7.0], &p(Majority)).0,
            Outcome::Value(7.0)
        );
        assert_eq!(
            combine(scale, &[2.0, 9.0, 7.0, 8.0], &p(Majority)).0,
            Outcome::Value(7.5)
        );
        assert_eq!(combine(scale, &[3.0, 6.0], &p(Mean)).0, Outcome::Value(4.5));
        assert_eq!(combine(scale, &[3.0, 6.0], &p(Min)).0, Outcome::Value(3.0));
        assert_eq!(combine(scale, &[3.0, 6.0], &p(Unanimous)).0, Outcome::Tie);
        assert_eq!(
            combine(scale, &[3.0, 6.0], &panel(Unanimous, 1, OnTie::Correct)).0,
            Outcome::Value(6.0)
        );
        // All equal: agreement 1; 1 and 10 around a median of 5.5: 1 - 4.5/9.
        assert_eq!(combine(scale, &[5.0, 5.0], &p(Mean)).1, Some(1.0));
        let (_, a) = combine(scale, &[1.0, 10.0], &p(Majority));
        assert!((a.unwrap() - 0.5).abs() < 1e-9);
    }
}
