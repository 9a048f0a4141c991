//! Agreement statistics: Cohen's and Fleiss' kappa, confusion matrices, Pearson and Spearman
//! correlation, mean absolute error, a running correlation for streamed summaries, and 95%
//! intervals (Wilson's for a proportion, the large-sample one for Cohen's kappa).
//!
//! Each figure is `None` where it is undefined (no data, one class only, a constant series),
//! never a number made up to fill the gap: scikit-learn and SciPy give NaN in the same places.
//! A Python test checks these functions against scikit-learn, SciPy and statsmodels on the same
//! labels (`tests/python/test_stats.py`).

/// The confusion matrix of `(label, prediction)` pairs over `k` categories: `m[label][prediction]`.
pub fn confusion(pairs: &[(usize, usize)], k: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0usize; k]; k];
    for &(l, p) in pairs {
        if l < k && p < k {
            m[l][p] += 1;
        }
    }
    m
}

/// Cohen's kappa of `(label, prediction)` pairs over `k` categories: the agreement beyond what
/// the two raters' own base rates would give by chance. `None` with no pairs, or when chance
/// agreement is already 1 (both raters used one and the same category only).
pub fn cohen_kappa(pairs: &[(usize, usize)], k: usize) -> Option<f64> {
    let n = pairs.len();
    if n == 0 {
        return None;
    }
    let m = confusion(pairs, k);
    let n = n as f64;
    let observed = (0..k).map(|i| m[i][i]).sum::<usize>() as f64 / n;
    let expected: f64 = (0..k)
        .map(|i| {
            let row: usize = m[i].iter().sum();
            let col: usize = m.iter().map(|r| r[i]).sum();
            (row as f64 / n) * (col as f64 / n)
        })
        .sum();
    if (1.0 - expected).abs() < 1e-12 {
        return None;
    }
    Some((observed - expected) / (1.0 - expected))
}

/// The two-sided 95% quantile of the standard normal distribution.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of a proportion: `successes` out of `n` (`None` when `n` is 0).
/// Unlike the normal approximation it stays within 0 and 1 and is honest for small `n` and for
/// proportions near 0 or 1 (statsmodels' `proportion_confint(method="wilson")`).
pub fn wilson(successes: usize, n: usize) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let (n, z2) = (n as f64, Z95 * Z95);
    let p = successes as f64 / n;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

/// The 95% interval of Cohen's kappa of `(label, prediction)` pairs over `k` categories, from its
/// large-sample standard error (Fleiss, Cohen and Everitt, 1969; statsmodels' `cohens_kappa`),
/// cut to the range of kappa, -1 to 1. `None` where kappa is undefined.
pub fn cohen_kappa_interval(pairs: &[(usize, usize)], k: usize) -> Option<[f64; 2]> {
    let kappa = cohen_kappa(pairs, k)?;
    let n = pairs.len() as f64;
    let m = confusion(pairs, k);
    let p = |i: usize, j: usize| m[i][j] as f64 / n;
    let row: Vec<f64> = (0..k).map(|i| (0..k).map(|j| p(i, j)).sum()).collect();
    let col: Vec<f64> = (0..k).map(|j| (0..k).map(|i| p(i, j)).sum()).collect();
    let expected: f64 = (0..k).map(|i| row[i] * col[i]).sum();
    let a: f64 = (0..k)
        .map(|i| p(i, i) * (1.0 - (row[i] + col[i]) * (1.0 - kappa)).powi(2))
        .sum();
    let b: f64 = (0..k)
        .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| p(i, j) * (col[i] + row[j]).powi(2))
        .sum::<f64>()
        * (1.0 - kappa).powi(2);
    let c = (kappa - expected * (1.0 - kappa)).powi(2);
    let variance = ((a + b - c) / (1.0 - expected).powi(2) / n).max(0.0);
    let half = Z95 * variance.sqrt();
    Some([(kappa - half).max(-1.0), (kappa + half).min(1.0)])
}

/// Rounds an interval's ends like [`round6`].
pub fn round6_pair(v: [f64; 2]) -> [f64; 2] {
    [round6(v[0]), round6(v[1])]
}

/// Fleiss' kappa of items rated by several raters: `counts[i][j]` is how many raters put item `i`
/// in category `j`. See [`Fleiss`] for items with fewer ratings.
pub fn fleiss_kappa(counts: &[Vec<usize>]) -> Option<f64> {
    let mut f = Fleiss::default();
    for c in counts {
        f.add(c.iter().enumerate().map(|(j, &n)| (j, n)));
    }
    f.value()
}

/// Fleiss' kappa kept as items arrive, over categories of any type. Items may have different
/// numbers of ratings (a rater that gave no verdict): observed agreement is averaged over the
/// items with at least two ratings, and the category shares weight each item equally (Gwet's
/// generalisation, which is Fleiss' kappa when every item has the same number of ratings).
#[derive(Debug, Clone)]
pub struct Fleiss<K: Ord> {
    /// Per category: the sum over items of its share of the item's ratings.
    shares: std::collections::BTreeMap<K, f64>,
    /// Items with at least one rating.
    rated: usize,
    /// Sum over items with two ratings or more of the share of agreeing rating pairs.
    pair_agreement: f64,
    multi: usize,
}

impl<K: Ord> Default for Fleiss<K> {
    fn default() -> Self {
        Fleiss {
            shares: std::collections::BTreeMap::new(),
            rated: 0,
            pair_agreement: 0.0,
            multi: 0,
        }
    }
}

impl<K: Ord> Fleiss<K> {
    /// Adds one item: how many ratings each category got.
    pub fn add(&mut self, counts: impl IntoIterator<Item = (K, usize)>) {
        let counts: Vec<(K, usize)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
        let r: usize = counts.iter().map(|(_, n)| n).sum();
        if r == 0 {
            return;
        }
        self.rated += 1;
        let same: usize = counts.iter().map(|(_, n)| n * (n - 1)).sum();
        for (c, n) in counts {
            *self.shares.entry(c).or_default() += n as f64 / r as f64;
        }
        if r >= 2 {
            self.multi += 1;
            self.pair_agreement += same as f64 / (r * (r - 1)) as f64;
        }
    }

    /// The kappa so far. `None` without an item rated twice, or when every rating is in one
    /// category.
    pub fn value(&self) -> Option<f64> {
        if self.multi == 0 {
            return None;
        }
        let expected: f64 = self
            .shares
            .values()
            .map(|s| (s / self.rated as f64).powi(2))
            .sum();
        if (1.0 - expected).abs() < 1e-12 {
            return None;
        }
        let observed = self.pair_agreement / self.multi as f64;
        Some((observed - expected) / (1.0 - expected))
    }
}

/// Pearson's correlation. `None` for fewer than two points or a constant series.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let mut c = Correlation::default();
    for (&x, &y) in xs.iter().zip(ys) {
        c.add(x, y);
    }
    c.value()
}

/// Spearman's rank correlation: Pearson's over the ranks, ties given their average rank.
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    pearson(&ranks(&xs[..n]), &ranks(&ys[..n]))
}

/// The mean absolute difference. `None` for no pairs.
pub fn mean_abs_error(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    (n > 0).then(|| xs.iter().zip(ys).map(|(x, y)| (x - y).abs()).sum::<f64>() / n as f64)
}

/// 1-based ranks, ties sharing the average of the ranks they span.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            out[o] = rank;
        }
        i = j + 1;
    }
    out
}

/// Pearson's correlation kept as points arrive (Welford's updates: no sums of squares that
/// lose precision), for summaries that see one result at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Correlation {
    n: u64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    co: f64,
}

impl Correlation {
    pub fn add(&mut self, x: f64, y: f64) {
        if !x.is_finite() || !y.is_finite() {
            return;
        }
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        self.mean_x += dx / n;
        let dy = y - self.mean_y;
        self.mean_y += dy / n;
        self.m2_x += dx * (x - self.mean_x);
        self.m2_y += dy * (y - self.mean_y);
        self.co += dx * (y - self.mean_y);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The correlation so far; `None` for fewer than two points or a constant series.
    pub fn value(&self) -> Option<f64> {
        let scale = (self.m2_x * self.m2_y).sqrt();
        // A series is constant when its spread is nothing next to its values.
        let flat = |m2: f64, mean: f64| m2 <= 1e-24 * (1.0 + mean * mean) * self.n as f64;
        if self.n < 2 || flat(self.m2_x, self.mean_x) || flat(self.m2_y, self.mean_y) {
            return None;
        }
        Some((self.co / scale).clamp(-1.0, 1.0))
    }
}

/// Rounds to six decimals for reports (figures beyond that are noise, and long floats are
/// hard to read in a CI log).
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn wilson_intervals_match_the_textbook_values() {
        // 8 of 10: 0.4902 to 0.9433 (Wilson 1927; as statsmodels gives it).
        let [lo, hi] = wilson(8, 10).unwrap();
        assert!(
            (lo - 0.490_162).abs() < 1e-5 && (hi - 0.943_318).abs() < 1e-5,
            "{lo} {hi}"
        );
        // All or nothing still gives an interval inside 0 and 1.
        let [lo, hi] = wilson(0, 5).unwrap();
        assert!(lo == 0.0 && hi > 0.4 && hi < 0.5, "{lo} {hi}");
        let [lo, hi] = wilson(5, 5).unwrap();
        assert!(hi == 1.0 && lo > 0.5 && lo < 0.6, "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn a_kappa_interval_holds_the_kappa_and_narrows_with_more_pairs() {
        let few: Vec<(usize, usize)> = (0..20)
            .map(|i| (i % 2, if i % 5 == 0 { 1 - i % 2 } else { i % 2 }))
            .collect();
        let many: Vec<(usize, usize)> = few.iter().cycle().take(200).copied().collect();
        let k = cohen_kappa(&few, 2).unwrap();
        let [lo, hi] = cohen_kappa_interval(&few, 2).unwrap();
        assert!(lo < k && k < hi, "{lo} {k} {hi}");
        let [lo2, hi2] = cohen_kappa_interval(&many, 2).unwrap();
        assert!(hi2 - lo2 < (hi - lo) / 2.0, "{lo2} {hi2} against {lo} {hi}");
        assert_eq!(cohen_kappa_interval(&[(0, 0), (0, 0)], 2), None);
    }

    #[test]
    fn cohen_kappa_matches_the_textbook_example() {
        // 50 items: both raters yes 20, both no 15, rater 1 yes / rater 2 no 5, the other 10.
        let mut pairs = vec![(1, 1); 20];
        pairs.extend(vec![(0, 0); 15]);
        pairs.extend(vec![(1, 0); 5]);
        pairs.extend(vec![(0, 1); 10]);
        // po = 0.7, pe = 0.5 * 0.6 + 0.5 * 0.4 = 0.5 -> 0.4
        assert!(close(cohen_kappa(&pairs, 2), 0.4));
        assert_eq!(confusion(&pairs, 2), vec![vec![15, 10], vec![5, 20]]);
        assert!(close(cohen_kappa(&[(0, 0), (1, 1)], 2), 1.0));
        assert!(close(cohen_kappa(&[(0, 1), (1, 0)], 2), -1.0));
        // One class only: chance agreement is 1, kappa is undefined.
        assert_eq!(cohen_kappa(&[(1, 1), (1, 1)], 2), None);
        assert_eq!(cohen_kappa(&[], 2), None);
        // A rater that always says the same, against mixed labels: no better than chance.
        assert!(close(
            cohen_kappa(&[(0, 1), (1, 1), (1, 1), (0, 1)], 2),
            0.0
        ));
    }

    #[test]
    fn fleiss_kappa_matches_the_classic_example() {
        // Fleiss (1971)'s 10 subjects, 14 raters, 5 categories, kappa 0.210.
        let table = vec![
            vec![0, 0, 0, 0, 14],
            vec![0, 2, 6, 4, 2],
            vec![0, 0, 3, 5, 6],
            vec![0, 3, 9, 2, 0],
            vec![2, 2, 8, 1, 1],
            vec![7, 7, 0, 0, 0],
            vec![3, 2, 6, 3, 0],
            vec![2, 5, 3, 2, 2],
            vec![6, 5, 2, 1, 0],
            vec![0, 2, 2, 3, 7],
        ];
        let k = fleiss_kappa(&table).unwrap();
        assert!((k - 0.20993).abs() < 1e-4, "{k}");
        assert_eq!(fleiss_kappa(&[vec![3, 0], vec![3, 0]]), None);
        assert_eq!(
            fleiss_kappa(&[vec![1, 0], vec![0, 1]]),
            None,
            "no item rated twice"
        );
        assert_eq!(fleiss_kappa(&[]), None);
        assert!(close(fleiss_kappa(&[vec![2, 0], vec![0, 2]]), 1.0));
    }

    #[test]
    fn correlations_handle_ties_and_constants() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!(close(pearson(&x, &[2.0, 4.0, 6.0, 8.0, 10.0]), 1.0));
        assert!(close(pearson(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]), -1.0));
        assert_eq!(pearson(&x, &[3.0; 5]), None);
        assert_eq!(pearson(&[1.0], &[1.0]), None);
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        // Monotone but not linear: Spearman 1, Pearson below.
        let y = [1.0, 8.0, 27.0, 64.0, 125.0];
        assert!(close(spearman(&x, &y), 1.0));
        assert!(pearson(&x, &y).unwrap() < 0.99);
        assert!(close(mean_abs_error(&[1.0, 2.0], &[2.0, 4.0]), 1.5));
        assert_eq!(mean_abs_error(&[], &[]), None);
    }

    #[test]
    fn the_running_correlation_equals_the_batch_one() {
        let xs: Vec<f64> = (0..200).map(|i| (i * 37 % 101) as f64).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x + (x * 7.0) % 13.0).collect();
        let mut c = Correlation::default();
        for (x, y) in xs.iter().zip(&ys) {
            c.add(*x, *y);
        }
        let n = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
        assert!(close(c.value(), cov / (vx * vy).sqrt()));
        assert_eq!(c.count(), 200);
        let mut flat = Correlation::default();
        for i in 0..10 {
            flat.add(1e9, i as f64);
        }
        assert_eq!(flat.value(), None);
    }
}
