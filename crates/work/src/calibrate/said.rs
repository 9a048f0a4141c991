//! What a judge said of an item, as a value comparable with its label: a category (binary,
//! pairwise) or a score; whether it agrees with the label; and the graded items as the pairs
//! the agreement figures are computed from.

use super::label::{Label, PAIRWISE};
use super::report::ItemVerdict;
use crate::batch::{JudgeVote, Tally};
use llm_judge_judge::JudgeKind;

/// A judge's verdict as a label-comparable value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Said {
    Category(usize),
    Score(f64),
}

pub(super) fn said(kind: JudgeKind, t: &Tally) -> Option<Said> {
    if !t.ok {
        return None;
    }
    match kind {
        JudgeKind::Binary => match t.verdict? {
            "correct" => Some(Said::Category(0)),
            "incorrect" => Some(Said::Category(1)),
            _ => None,
        },
        JudgeKind::Score => t.score.map(Said::Score),
        JudgeKind::Compare => PAIRWISE
            .iter()
            .position(|w| Some(*w) == t.winner)
            .map(Said::Category),
    }
}

/// A panel member's vote as a label-comparable value.
pub(super) fn member_said(kind: JudgeKind, v: &JudgeVote) -> Option<Said> {
    if v.status != "ok" {
        return None;
    }
    match kind {
        JudgeKind::Binary => match v.verdict.as_deref()? {
            "correct" => Some(Said::Category(0)),
            "incorrect" => Some(Said::Category(1)),
            _ => None,
        },
        JudgeKind::Score => v.score.map(Said::Score),
        JudgeKind::Compare => PAIRWISE
            .iter()
            .position(|w| v.category.as_deref() == Some(*w))
            .map(Said::Category),
    }
}

pub(super) fn agrees(s: Said, label: Label) -> bool {
    match (s, label) {
        (Said::Score(v), Label::Score(l)) => (v - l).abs() < 1e-9,
        (Said::Category(c), l) => l.category() == Some(c),
        _ => false,
    }
}

/// What a judge said of one item, for per-item results.
pub(super) fn item_verdict(t: &Tally, label: Label) -> ItemVerdict {
    let kind = match label {
        Label::Binary(_) => JudgeKind::Binary,
        Label::Score(_) => JudgeKind::Score,
        Label::Pairwise(_) => JudgeKind::Compare,
    };
    ItemVerdict {
        verdict: if t.ok { t.verdict } else { Some("error") },
        score: t.score,
        winner: t.winner,
        agrees: said(kind, t).map(|s| agrees(s, label)),
    }
}

/// The graded items' (label, verdict) categories, for Cohen's kappa and the confusion matrix.
pub(super) fn category_pairs(graded: &[(Said, Label)]) -> Vec<(usize, usize)> {
    graded
        .iter()
        .filter_map(|(s, l)| match s {
            Said::Category(c) => Some((l.category()?, *c)),
            Said::Score(_) => None,
        })
        .collect()
}

/// The graded items' scores and labels, side by side.
pub(super) fn score_pairs(graded: &[(Said, Label)]) -> (Vec<f64>, Vec<f64>) {
    graded
        .iter()
        .filter_map(|(s, l)| match (s, l) {
            (Said::Score(v), Label::Score(l)) => Some((*v, *l)),
            _ => None,
        })
        .unzip()
}
