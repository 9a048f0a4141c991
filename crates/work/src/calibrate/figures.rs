//! One judge's agreement with the labels: accuracy over graded items, the unscored and error
//! counts, and the kind's own figures (Cohen's kappa, the confusion matrix and rates for binary
//! and pairwise; correlations and errors for scores; position bias for pairwise), per group too.

use std::collections::BTreeMap;

use super::item::LabelledItem;
use super::label::{BINARY, Label, PAIRWISE};
use super::panel::panel_figures;
use super::report::{Confusion, GroupFigures, JudgeFigures, PositionFigures, rate};
use super::said::{Said, agrees, category_pairs, said, score_pairs};
use crate::batch::{Position, Tally};
use llm_judge_chat::Usage;
use llm_judge_judge::JudgeKind;
use llm_judge_judge::stats::{self, round6};

/// One judge's figures over the items.
pub(super) fn figures(
    kind: JudgeKind,
    name: &str,
    items: &[LabelledItem],
    tallies: &[Tally],
) -> JudgeFigures {
    let n = items.len();
    let errors = tallies.iter().filter(|t| !t.ok).count();
    let unscored = tallies
        .iter()
        .filter(|t| t.ok && t.verdict == Some("unscored"))
        .count();
    let mut usage = Usage::default();
    let mut cost = Some(0.0);
    for t in tallies.iter().filter(|t| t.ok) {
        usage.add(t.usage);
        cost = cost.zip(t.cost_usd).map(|(a, b)| a + b);
    }
    let graded: Vec<(Said, Label)> = tallies
        .iter()
        .zip(items)
        .filter_map(|(t, it)| said(kind, t).map(|s| (s, it.label)))
        .collect();
    let agreed = graded.iter().filter(|(s, l)| agrees(*s, *l)).count();
    let mut f = JudgeFigures {
        judge: name.to_string(),
        items: n,
        graded: graded.len(),
        unscored,
        errors,
        unscored_rate: rate(unscored, n),
        accuracy: rate(agreed, graded.len()),
        accuracy_interval: stats::wilson(agreed, graded.len()).map(stats::round6_pair),
        cohen_kappa: None,
        cohen_kappa_interval: None,
        base_rate: None,
        predicted_rate: None,
        precision: None,
        recall: None,
        f1: None,
        confusion: None,
        spearman: None,
        pearson: None,
        mean_abs_error: None,
        within_one: None,
        position_bias: None,
        groups: BTreeMap::new(),
        panel: None,
        usage,
        cost_usd: cost.map(round6),
    };
    match kind {
        JudgeKind::Binary | JudgeKind::Compare => category_figures(&mut f, kind, &graded, tallies),
        JudgeKind::Score => score_figures(&mut f, &graded),
    }
    f.groups = group_figures(kind, items, tallies);
    f.panel = panel_figures(kind, items, tallies);
    f
}

/// Binary and pairwise: Cohen's kappa and the confusion matrix; for binary, the base and
/// predicted rates, precision, recall and F1 of `correct`; for pairwise, position bias.
fn category_figures(
    f: &mut JudgeFigures,
    kind: JudgeKind,
    graded: &[(Said, Label)],
    tallies: &[Tally],
) {
    let k = if kind == JudgeKind::Binary { 2 } else { 3 };
    let pairs = category_pairs(graded);
    let matrix = stats::confusion(&pairs, k);
    f.cohen_kappa = Some(stats::cohen_kappa(&pairs, k).map(round6));
    f.cohen_kappa_interval = Some(stats::cohen_kappa_interval(&pairs, k).map(stats::round6_pair));
    f.confusion = Some(Confusion {
        labels: if kind == JudgeKind::Binary {
            BINARY.to_vec()
        } else {
            PAIRWISE.to_vec()
        },
        matrix: matrix.clone(),
    });
    if kind == JudgeKind::Binary {
        let g = pairs.len();
        let (tp, fneg, fp) = (matrix[0][0], matrix[0][1], matrix[1][0]);
        f.base_rate = Some(rate(tp + fneg, g));
        f.predicted_rate = Some(rate(tp + fp, g));
        f.precision = Some(rate(tp, tp + fp));
        f.recall = Some(rate(tp, tp + fneg));
        f.f1 = Some(rate(2 * tp, 2 * tp + fp + fneg));
    } else {
        f.position_bias = Some(position_figures(tallies.iter().filter(|t| t.ok)));
    }
}

/// Scores: Spearman's and Pearson's correlation with the labels, the mean absolute error, and
/// the share within one point of the label.
fn score_figures(f: &mut JudgeFigures, graded: &[(Said, Label)]) {
    let (xs, ys) = score_pairs(graded);
    let near = xs
        .iter()
        .zip(&ys)
        .filter(|(x, y)| (*x - *y).abs() <= 1.0)
        .count();
    f.spearman = Some(stats::spearman(&xs, &ys).map(round6));
    f.pearson = Some(stats::pearson(&xs, &ys).map(round6));
    f.mean_abs_error = Some(stats::mean_abs_error(&xs, &ys).map(round6));
    f.within_one = Some(rate(near, xs.len()));
}

/// Accuracy within each `group` of items.
fn group_figures(
    kind: JudgeKind,
    items: &[LabelledItem],
    tallies: &[Tally],
) -> BTreeMap<String, GroupFigures> {
    let mut groups: BTreeMap<String, GroupFigures> = BTreeMap::new();
    for (t, it) in tallies.iter().zip(items) {
        let Some(g) = &it.group else { continue };
        let e = groups.entry(g.clone()).or_default();
        e.items += 1;
        if t.ok && t.verdict == Some("unscored") {
            e.unscored += 1;
        }
        if let Some(s) = said(kind, t) {
            e.graded += 1;
            // `accuracy` holds the agreeing count until the end.
            *e.accuracy.get_or_insert(0.0) += f64::from(u8::from(agrees(s, it.label)));
        }
    }
    for e in groups.values_mut() {
        let agreed = e.accuracy.unwrap_or(0.0) as usize;
        e.accuracy_interval = stats::wilson(agreed, e.graded).map(stats::round6_pair);
        e.accuracy = e.accuracy.map(|a| round6(a / e.graded as f64));
    }
    groups
}

fn position_figures<'a>(tallies: impl Iterator<Item = &'a Tally>) -> PositionFigures {
    let (mut swapped, mut flips, mut decisions, mut firsts) = (0, 0, 0, 0);
    for t in tallies {
        if let Some(c) = t.consistent {
            swapped += 1;
            flips += usize::from(!c);
        }
        for p in &t.positions {
            match p {
                Position::First => {
                    decisions += 1;
                    firsts += 1;
                }
                Position::Second => decisions += 1,
                _ => {}
            }
        }
    }
    PositionFigures {
        flip_rate: rate(flips, swapped),
        first_position_rate: rate(firsts, decisions),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::calibrate::item::parse_item;

    fn tally(verdict: &'static str) -> Tally {
        Tally {
            ok: true,
            verdict: Some(verdict),
            cost_usd: Some(0.0),
            ..Tally::default()
        }
    }

    #[test]
    fn figures_leave_unscored_and_errors_out_of_agreement() {
        let labels = [true, true, false, false, true, false];
        let items: Vec<LabelledItem> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                parse_item(
                    JudgeKind::Binary,
                    i,
                    json!({"question": "q", "answer": "a", "prediction": "p", "label": l, "group": if i < 3 {"x"} else {"y"}}),
                )
                .unwrap()
            })
            .collect();
        let tallies = vec![
            tally("correct"),
            tally("incorrect"),
            tally("incorrect"),
            tally("correct"),
            tally("unscored"),
            Tally::default(),
        ];
        let f = figures(JudgeKind::Binary, "j", &items, &tallies);
        assert_eq!((f.items, f.graded, f.unscored, f.errors), (6, 4, 1, 1));
        assert_eq!(f.accuracy, Some(0.5));
        assert_eq!(f.unscored_rate, Some(round6(1.0 / 6.0)));
        let c = f.confusion.unwrap();
        assert_eq!(c.labels, vec!["correct", "incorrect"]);
        assert_eq!(c.matrix, vec![vec![1, 1], vec![1, 1]]);
        assert_eq!(f.cohen_kappa, Some(Some(0.0)));
        assert_eq!(f.base_rate, Some(Some(0.5)));
        assert_eq!(f.precision, Some(Some(0.5)));
        assert_eq!(f.groups["x"].graded, 3);
        assert_eq!(f.groups["y"].unscored, 1);
        assert_eq!(f.groups["y"].accuracy, Some(0.0));
    }
}
