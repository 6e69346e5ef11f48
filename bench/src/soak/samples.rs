//! The server's resident memory and open file descriptors over the run, and their trend:
//! the least-squares slope after a warm-up.

/// One reading of the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Resident memory (VmRSS), KiB.
    pub rss_kib: f64,
    /// Open file descriptors.
    pub fds: f64,
}

/// How one measure went: first, last and largest value, and the slope per minute over the
/// samples after the warm-up (`None` with fewer than two of them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// The first sample's value (before any call).
    pub first: f64,
    /// The last sample's value.
    pub last: f64,
    /// The largest value seen.
    pub max: f64,
    /// Least-squares slope after the warm-up, units per minute.
    pub per_minute: Option<f64>,
}

impl Trend {
    /// The trend of `value` over `samples`, the slope over those taken at `warm_up_s` or
    /// later. `None` without samples.
    pub fn of(samples: &[Sample], warm_up_s: f64, value: impl Fn(&Sample) -> f64) -> Option<Trend> {
        let first = value(samples.first()?);
        let last = value(samples.last()?);
        let max = samples.iter().map(&value).fold(f64::MIN, f64::max);
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.at_s >= warm_up_s)
            .map(|s| (s.at_s / 60.0, value(s)))
            .collect();
        Some(Trend {
            first,
            last,
            max,
            per_minute: slope(&points),
        })
    }
}

/// The least-squares slope of `points` (x, y): Σ(x-x̄)(y-ȳ) / Σ(x-x̄)². `None` with fewer
/// than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_gradient() {
        let line: Vec<_> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect();
        let s = slope(&line).expect("slope");
        assert!((s - 3.0).abs() < 1e-9, "{s}");
        let flat = [(0.0, 5.0), (1.0, 6.0), (2.0, 5.0), (3.0, 6.0)];
        assert!(slope(&flat).expect("slope").abs() < 0.5);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(slope(&[]), None);
    }

    #[test]
    fn a_trend_skips_the_warm_up_and_counts_per_minute() {
        let samples: Vec<_> = (0..=20)
            .map(|i| Sample {
                at_s: i as f64 * 30.0,
                // A jump during the warm-up, then 10 KiB a minute.
                rss_kib: if i < 2 {
                    100.0
                } else {
                    5000.0 + 5.0 * i as f64
                },
                fds: 12.0,
            })
            .collect();
        let rss = Trend::of(&samples, 60.0, |s| s.rss_kib).expect("trend");
        assert!(
            (rss.per_minute.expect("slope") - 10.0).abs() < 1e-6,
            "{rss:?}"
        );
        assert_eq!((rss.first, rss.last, rss.max), (100.0, 5100.0, 5100.0));
        let fds = Trend::of(&samples, 60.0, |s| s.fds).expect("trend");
        assert_eq!(fds.per_minute, Some(0.0));
        assert_eq!(Trend::of(&[], 0.0, |s| s.fds), None);
    }
}
