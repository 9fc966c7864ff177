//! The statistics of a study: mean and sample standard deviation over seeds, a percentile bootstrap interval and
//! a Student-t interval for the mean, and the same for paired differences (one arm minus the reference arm on the
//! seeds both finished). Intervals are 95%.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Resamples of a bootstrap interval.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Mean, spread and 95% intervals of a few numbers (one per seed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for one number.
    pub std: f64,
    /// Percentile bootstrap interval of the mean ([`BOOTSTRAP_RESAMPLES`] resamples); the mean itself for n = 1.
    pub bootstrap: (f64, f64),
    /// mean ± t(0.975, n − 1) · std / √n; absent for n = 1.
    pub t_interval: Option<(f64, f64)>,
}

/// Summarise `values` (at least one, all finite; the caller guarantees it). `seed` fixes the bootstrap draws.
pub fn summarize(values: &[f64], seed: u64) -> Summary {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std =
        if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let t_interval = (n > 1).then(|| {
        let h = t_975(n - 1) * std / (n as f64).sqrt();
        (mean - h, mean + h)
    });
    Summary { n, mean, std, bootstrap: bootstrap_interval(values, seed), t_interval }
}

/// The 2.5% and 97.5% quantiles (linear interpolation, numpy's default) of the means of resamples drawn with
/// replacement.
pub fn bootstrap_interval(values: &[f64], seed: u64) -> (f64, f64) {
    let n = values.len();
    if n == 1 {
        return (values[0], values[0]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    (quantile(&means, 0.025), quantile(&means, 0.975))
}

/// Quantile `q` of sorted values, interpolating linearly between order statistics.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] + frac * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom: tabulated to df = 30, the Cornish-Fisher
/// expansion in 1/df beyond (error below 1e-4 there).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
        2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518,
        2.0484, 2.0452, 2.0423,
    ];
    assert!(df >= 1, "t quantile needs at least one degree of freedom");
    if df <= 30 {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let v = df as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_scipy() {
        // scipy.stats.t.ppf(0.975, df)
        for (df, want) in
            [(1, 12.706205), (2, 4.302653), (4, 2.776445), (30, 2.042272), (40, 2.021075), (120, 1.979930)]
        {
            assert!((t_975(df) - want).abs() < 1e-4, "df {df}: {} vs {want}", t_975(df));
        }
    }

    #[test]
    fn bootstrap_of_two_values_spans_them() {
        // Resample means of {a, b} are a, (a+b)/2 or b with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5%
        // quantiles are a and b.
        assert_eq!(bootstrap_interval(&[0.2, 0.6], 3), (0.2, 0.6));
        let s = summarize(&[0.5, 0.7, 0.9], 0);
        assert!((s.mean - 0.7).abs() < 1e-12 && (s.std - 0.2).abs() < 1e-12);
        let (lo, hi) = s.t_interval.unwrap();
        assert!((hi - 0.7 - 4.3027 * 0.2 / 3f64.sqrt()).abs() < 1e-9 && (0.7 - lo - (hi - 0.7)).abs() < 1e-12);
        assert!(s.bootstrap.0 >= 0.5 && s.bootstrap.1 <= 0.9 && s.bootstrap.0 < 0.7 && s.bootstrap.1 > 0.7);
    }

    #[test]
    fn quantile_interpolates_as_numpy() {
        // numpy.quantile([1, 2, 3, 4], 0.1) == 1.3
        assert!((quantile(&[1.0, 2.0, 3.0, 4.0], 0.1) - 1.3).abs() < 1e-12);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
    }
}
