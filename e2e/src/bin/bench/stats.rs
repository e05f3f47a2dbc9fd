//! The arithmetic of the report: percentiles of raw samples, a number's spread across runs,
//! whether two systems differ by more than that spread, and a least-squares slope.

/// Nearest-rank percentile: always an observed value. `values` need not be sorted.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One number measured in several runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        })
    }
}

/// How two systems' runs of one number compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every run of one is below every run of the other: the difference exceeds the
    /// run-to-run spread.
    Exceeds,
    /// The ranges overlap: the difference is within the spread.
    Within,
    /// Fewer than two runs of one of them: no spread to compare with.
    Unknown,
}

pub fn compare(a: &Spread, b: &Spread) -> Verdict {
    if a.runs < 2 || b.runs < 2 {
        Verdict::Unknown
    } else if a.max < b.min || b.max < a.min {
        Verdict::Exceeds
    } else {
        Verdict::Within
    }
}

/// Least-squares slope and intercept of y over x; None with fewer than two distinct x.
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if points.len() < 2 || sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((slope, mean_y - slope * mean_x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_pick_observed_values_in_any_order() {
        let mut values: Vec<f64> = (1..=1000).map(f64::from).collect();
        values.reverse();
        assert_eq!(percentile(&values, 50.0), Some(500.0));
        assert_eq!(percentile(&values, 99.0), Some(990.0));
        assert_eq!(percentile(&values, 100.0), Some(1000.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max, odd.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn a_difference_exceeds_the_spread_only_when_the_ranges_are_disjoint() {
        let a = Spread::of(&[5.0, 6.0, 7.0]).unwrap();
        let b = Spread::of(&[8.0, 9.0, 12.0]).unwrap();
        assert_eq!(compare(&a, &b), Verdict::Exceeds);
        assert_eq!(compare(&b, &a), Verdict::Exceeds);
        let touching = Spread::of(&[7.0, 10.0]).unwrap();
        assert_eq!(compare(&a, &touching), Verdict::Within);
        let single = Spread::of(&[1.0]).unwrap();
        assert_eq!(compare(&a, &single), Verdict::Unknown);
    }

    #[test]
    fn the_fitted_slope_of_points_on_a_line_is_that_line() {
        let points = [(0.0, 10.0), (1000.0, 12.0), (10000.0, 30.0)];
        let (slope, intercept) = fit(&points).unwrap();
        assert!((slope - 0.002).abs() < 1e-12 && (intercept - 10.0).abs() < 1e-9);
        assert_eq!(fit(&[(1.0, 2.0)]), None);
        assert_eq!(fit(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }
}
