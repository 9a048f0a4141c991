//! A panel's own figures in a calibration: each member's agreement with the labels, and the
//! members' agreement among themselves (Fleiss' kappa).

use std::collections::BTreeMap;

use super::item::LabelledItem;
use super::label::Label;
use super::report::{MemberFigures, PanelFigures, rate};
use super::said::{Said, agrees, category_pairs, member_said, score_pairs};
use crate::batch::Tally;
use llm_judge_judge::JudgeKind;
use llm_judge_judge::stats::{self, round6};

/// The panel's figures, when the judge is a panel (its items' tallies carry the votes).
pub(super) fn panel_figures(
    kind: JudgeKind,
    items: &[LabelledItem],
    tallies: &[Tally],
) -> Option<PanelFigures> {
    let names: Vec<String> = tallies
        .iter()
        .find_map(|t| t.panel.as_ref())?
        .judges
        .iter()
        .map(|v| v.judge.clone())
        .collect();
    let mut fleiss: stats::Fleiss<String> = stats::Fleiss::default();
    let mut per: Vec<Vec<(Said, Label)>> = vec![Vec::new(); names.len()];
    let mut absent = vec![0usize; names.len()];
    for (t, it) in tallies.iter().zip(items) {
        let Some(p) = &t.panel else {
            absent.iter_mut().for_each(|a| *a += 1);
            continue;
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (m, v) in p.judges.iter().enumerate().take(names.len()) {
            match member_said(kind, v) {
                Some(s) => per[m].push((s, it.label)),
                None => absent[m] += 1,
            }
            if let Some(c) = &v.category {
                *counts.entry(c.clone()).or_default() += 1;
            }
        }
        fleiss.add(counts);
    }
    let members = names
        .into_iter()
        .zip(per)
        .zip(absent)
        .map(|((judge, graded), absent)| member_figures(kind, judge, &graded, absent))
        .collect();
    Some(PanelFigures {
        fleiss_kappa: fleiss.value().map(round6),
        members,
    })
}

/// One member's agreement with the labels, over the items it graded.
fn member_figures(
    kind: JudgeKind,
    judge: String,
    graded: &[(Said, Label)],
    absent: usize,
) -> MemberFigures {
    let agreed = graded.iter().filter(|(s, l)| agrees(*s, *l)).count();
    let k = if kind == JudgeKind::Binary { 2 } else { 3 };
    let pairs = category_pairs(graded);
    let (xs, ys) = score_pairs(graded);
    MemberFigures {
        judge,
        graded: graded.len(),
        absent,
        accuracy: rate(agreed, graded.len()),
        accuracy_interval: stats::wilson(agreed, graded.len()).map(stats::round6_pair),
        cohen_kappa: (kind != JudgeKind::Score)
            .then(|| stats::cohen_kappa(&pairs, k).map(round6))
            .flatten(),
        mean_abs_error: stats::mean_abs_error(&xs, &ys).map(round6),
    }
}
