//! The label-corrected accuracy of a binary batch: when some items carry a human `label`, the
//! prediction-powered estimate of the true accuracy (PPI++: Angelopoulos, Duchi and Zrnic, 2023),
//! from the judge's verdicts on every item and the labelled items' verdicts against their labels.
//!
//! With Y the labels (1 correct, 0 incorrect) and Ŷ the verdicts of the `n` labelled items, and
//! Ŷu the verdicts of the `N` unlabelled ones (items without a verdict are left out):
//! `estimate = λ·mean(Ŷu) + mean(Y − λ·Ŷ)`, with the power-tuned
//! `λ = cov(Y, Ŷ) / ((1 + n/N)·var(Ŷ ∪ Ŷu))`, and the 95% interval
//! `estimate ± z·sqrt(λ²·var(Ŷu)/N + var(Y − λ·Ŷ)/n)`. This is what `ppi_py`'s
//! `ppi_mean_pointestimate` and `ppi_mean_ci` give with their default tuning (the interval cut
//! to 0 to 1 here). Every figure comes from a few running sums, so a job's summary is the same
//! whether counted as its items finish or recounted from its stored results.

use serde::Serialize;
use utoipa::ToSchema;

use llm_judge_judge::stats::round6;

/// The two-sided 95% quantile of the standard normal distribution.
const Z95: f64 = 1.959_963_984_540_054;
/// The half-width `labels_for_half_width` aims at: plus or minus 2 points of accuracy.
const TARGET_HALF_WIDTH: f64 = 0.02;

/// The running sums of a binary batch's labelled and unlabelled verdicts.
#[derive(Debug, Clone, Default)]
pub(super) struct Ppi {
    /// Labelled items with a verdict: their count, Σ label, Σ verdict, Σ label·verdict.
    n: u64,
    y: u64,
    yh: u64,
    y_yh: u64,
    /// Unlabelled items with a verdict: their count and Σ verdict.
    big_n: u64,
    yhu: u64,
    /// Labelled items that got no verdict (unscored): left out.
    left_out: u64,
}

/// The label-corrected accuracy, as the summary shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CorrectedAccuracy {
    /// The prediction-powered estimate of the share of items that are correct, by the labels'
    /// measure (null with fewer than two labelled items with a verdict).
    pub estimate: Option<f64>,
    /// Its 95% interval, `[low, high]`.
    pub interval: Option<[f64; 2]>,
    /// Labelled items used (those with a verdict).
    pub labels: u64,
    /// Labelled items left out: the judge gave them no verdict.
    pub labels_left_out: u64,
    /// Unlabelled items with a verdict, used through the judge's verdicts.
    pub unlabelled: u64,
    /// `ppi++` (power-tuned prediction-powered inference).
    pub method: &'static str,
    /// How strongly the verdicts are leaned on (0: the labels alone; 1: plain PPI).
    pub lambda: Option<f64>,
    /// About how many labelled items (with the same agreement between labels and verdicts)
    /// would bring the interval to plus or minus 2 points; null when no number of labels can
    /// with this many unlabelled items, or with too few labels to tell.
    pub labels_for_half_width: Option<u64>,
}

impl Ppi {
    /// Counts one item with a verdict (`correct`), labelled or not.
    pub(super) fn add(&mut self, label: Option<bool>, correct: bool) {
        let yh = u64::from(correct);
        match label {
            Some(l) => {
                let y = u64::from(l);
                self.n += 1;
                self.y += y;
                self.yh += yh;
                self.y_yh += y * yh;
            }
            None => {
                self.big_n += 1;
                self.yhu += yh;
            }
        }
    }

    /// Counts a labelled item the judge gave no verdict.
    pub(super) fn left_out(&mut self) {
        self.left_out += 1;
    }

    /// The corrected accuracy, when any item was labelled.
    pub(super) fn finish(&self) -> Option<CorrectedAccuracy> {
        if self.n == 0 && self.left_out == 0 {
            return None;
        }
        let mut out = CorrectedAccuracy {
            estimate: None,
            interval: None,
            labels: self.n,
            labels_left_out: self.left_out,
            unlabelled: self.big_n,
            method: "ppi++",
            lambda: None,
            labels_for_half_width: None,
        };
        if self.n < 2 {
            return Some(out);
        }
        let (n, big_n) = (self.n as f64, self.big_n as f64);
        let (my, myh) = (self.y as f64 / n, self.yh as f64 / n);
        // Population covariance of labels and verdicts (they are 0 or 1: Y² = Y, Ŷ² = Ŷ).
        let cov = self.y_yh as f64 / n - my * myh;
        // Sample variance (one degree of freedom off) of every verdict, labelled or not.
        let all = n + big_n;
        let all_sum = (self.yh + self.yhu) as f64;
        let var_all = if all > 1.0 {
            (all_sum - all_sum * all_sum / all) / (all - 1.0)
        } else {
            0.0
        };
        let lambda = if self.big_n == 0 || var_all <= 0.0 {
            0.0
        } else {
            cov / ((1.0 + n / big_n) * var_all)
        };
        let mu = if self.big_n > 0 {
            self.yhu as f64 / big_n
        } else {
            0.0
        };
        let estimate = lambda * mu + my - lambda * myh;
        // var(Ŷu) and var(Y − λŶ), both over their own items (no degree of freedom off).
        let var_u = mu - mu * mu;
        let mean_r = my - lambda * myh;
        let second_r = (self.y as f64 - 2.0 * lambda * self.y_yh as f64
            + lambda * lambda * self.yh as f64)
            / n;
        let var_r = (second_r - mean_r * mean_r).max(0.0);
        let imputed = if self.big_n > 0 {
            lambda * lambda * var_u / big_n
        } else {
            0.0
        };
        let half = Z95 * (imputed + var_r / n).sqrt();
        out.estimate = Some(round6(estimate));
        out.interval = Some([
            round6((estimate - half).max(0.0)),
            round6((estimate + half).min(1.0)),
        ]);
        out.lambda = Some(round6(lambda));
        let room = (TARGET_HALF_WIDTH / Z95).powi(2) - imputed;
        out.labels_for_half_width =
            (room > 0.0 && var_r > 0.0).then(|| (var_r / room).ceil() as u64);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_unlabelled_items_it_is_the_labels_own_mean() {
        let mut p = Ppi::default();
        for (l, v) in [(true, true), (true, false), (false, false), (true, true)] {
            p.add(Some(l), v);
        }
        let c = p.finish().unwrap();
        assert_eq!(c.estimate, Some(0.75));
        assert_eq!(c.lambda, Some(0.0));
        assert_eq!((c.labels, c.unlabelled), (4, 0));
    }

    #[test]
    fn a_perfect_judge_makes_the_estimate_its_verdicts_mean() {
        let mut p = Ppi::default();
        for i in 0..40 {
            let v = i % 4 != 0;
            p.add((i < 10).then_some(v), v);
        }
        let c = p.finish().unwrap();
        // λ near 1: the estimate is about the verdicts' mean over all 40 (0.75).
        assert!((c.estimate.unwrap() - 0.75).abs() < 0.02, "{c:?}");
        let [lo, hi] = c.interval.unwrap();
        assert!(lo < 0.75 && 0.75 < hi, "{c:?}");
    }

    #[test]
    fn no_labels_no_figure_and_one_label_no_estimate() {
        let mut p = Ppi::default();
        p.add(None, true);
        assert_eq!(p.finish(), None);
        p.add(Some(true), true);
        let c = p.finish().unwrap();
        assert_eq!((c.estimate, c.labels), (None, 1));
    }
}
