//! Where a judgment is made: by a panel when the route names one, else by the route alone.

use crate::error::JudgeError;
use crate::items::{BinaryItem, CompareItem, ScoreItem};
use crate::judge::Judge;
use crate::judgment::{CompareJudgment, Judgment, ScoreJudgment};
use llm_judge_pool::Via;

impl Judge {
    /// Judges whether a prediction matches the reference.
    pub async fn binary(
        &self,
        route: &str,
        item: &BinaryItem,
        via: &Via,
    ) -> Result<Judgment, JudgeError> {
        match self.panels.get(route) {
            Some(panel) => self.panel_binary(route, panel, item, via).await,
            None => self.binary_single(route, item, via).await,
        }
    }

    /// Grades a response on a scale.
    pub async fn score(
        &self,
        route: &str,
        item: &ScoreItem,
        via: &Via,
    ) -> Result<ScoreJudgment, JudgeError> {
        match self.panels.get(route) {
            Some(panel) => self.panel_score(route, panel, item, via).await,
            None => self.score_single(route, item, via).await,
        }
    }

    /// Decides which of two responses is better; with `swap`, in both orders.
    pub async fn compare(
        &self,
        route: &str,
        item: &CompareItem,
        via: &Via,
    ) -> Result<CompareJudgment, JudgeError> {
        match self.panels.get(route) {
            Some(panel) => self.panel_compare(route, panel, item, via).await,
            None => self.compare_single(route, item, via).await,
        }
    }
}
