//! A panel's figures over a batch: each judge's counts, accuracy and agreement with the panel,
//! and the judges' agreement among themselves (Fleiss' kappa).

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::bias::PositionBias;
use super::tally::PanelTally;
use llm_judge_judge::JudgeKind;
use llm_judge_judge::stats::{self, Fleiss, round6};

/// One judge of a panel over a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PanelJudgeSummary {
    pub judge: String,
    pub correct: usize,
    pub incorrect: usize,
    pub unscored: usize,
    /// Items where every provider of its route failed.
    pub errors: usize,
    /// Items it was not asked about (escalation).
    pub not_called: usize,
    /// correct / (correct + incorrect), as the batch's own accuracy; null when it graded none.
    pub accuracy: Option<f64>,
    /// The accuracy's 95% Wilson interval, `[low, high]`.
    pub accuracy_interval: Option<[f64; 2]>,
    /// Of the items where both this judge and the panel gave a verdict, the share where they
    /// gave the same one.
    pub agreement_with_panel: Option<f64>,
    /// Scores: the mean of its scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_score: Option<f64>,
    /// Pairwise: its own flip rate and first-position preference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_bias: Option<PositionBias>,
    #[serde(skip)]
    agreed: usize,
    #[serde(skip)]
    compared: usize,
    #[serde(skip)]
    score_sum: f64,
    #[serde(skip)]
    scores: usize,
}

/// A panel's figures over a batch.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PanelSummary {
    /// Items judged by this panel.
    pub items: usize,
    /// Fleiss' kappa of the judges' votes: 1 when they always agree, 0 when they agree no
    /// more than chance; null when undefined (every vote in one category, or no item with two
    /// votes). Judges that gave no verdict on an item are left out of that item (Gwet's form).
    pub fleiss_kappa: Option<f64>,
    pub judges: Vec<PanelJudgeSummary>,
    #[serde(skip)]
    fleiss: Fleiss<String>,
}

impl PanelSummary {
    pub(super) fn count(&mut self, kind: Option<JudgeKind>, t: &PanelTally) {
        self.items += 1;
        for (i, v) in t.judges.iter().enumerate() {
            if self.judges.len() <= i {
                self.judges.push(PanelJudgeSummary {
                    judge: v.judge.clone(),
                    correct: 0,
                    incorrect: 0,
                    unscored: 0,
                    errors: 0,
                    not_called: 0,
                    accuracy: None,
                    accuracy_interval: None,
                    agreement_with_panel: None,
                    mean_score: None,
                    position_bias: (kind == Some(JudgeKind::Compare)).then(PositionBias::default),
                    agreed: 0,
                    compared: 0,
                    score_sum: 0.0,
                    scores: 0,
                });
            }
            let j = &mut self.judges[i];
            match (v.status.as_str(), v.verdict.as_deref()) {
                ("error", _) => j.errors += 1,
                ("not_called", _) => j.not_called += 1,
                (_, Some("correct")) => j.correct += 1,
                (_, Some("incorrect")) => j.incorrect += 1,
                (_, Some("unscored")) => j.unscored += 1,
                _ => {}
            }
            if let Some(s) = v.score {
                j.score_sum += s;
                j.scores += 1;
            }
            if let Some(b) = j.position_bias.as_mut() {
                b.count(v.consistent, &v.positions);
            }
            if let (Some(c), Some(d)) = (&v.category, &t.decision) {
                j.compared += 1;
                j.agreed += usize::from(c == d);
            }
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for c in t.judges.iter().filter_map(|v| v.category.clone()) {
            *counts.entry(c).or_default() += 1;
        }
        self.fleiss.add(counts);
    }

    pub(super) fn finish(&mut self) {
        self.fleiss_kappa = self.fleiss.value().map(round6);
        for j in &mut self.judges {
            let graded = j.correct + j.incorrect;
            j.accuracy = (graded > 0).then(|| round6(j.correct as f64 / graded as f64));
            j.accuracy_interval = stats::wilson(j.correct, graded).map(stats::round6_pair);
            j.agreement_with_panel =
                (j.compared > 0).then(|| round6(j.agreed as f64 / j.compared as f64));
            j.mean_score = (j.scores > 0).then(|| round6(j.score_sum / j.scores as f64));
            if let Some(b) = j.position_bias.as_mut() {
                b.finish();
            }
        }
    }
}
