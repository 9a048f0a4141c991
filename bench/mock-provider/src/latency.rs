//! Latency distributions, in milliseconds, never below zero.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum LatencyDist {
    Fixed(f64),
    Uniform(f64, f64),
    Normal { mean: f64, sd: f64 },
    Exp { mean: f64 },
}

impl LatencyDist {
    /// Reads `fixed:MS`, `uniform:LO:HI`, `normal:MEAN:SD` or `exp:MEAN`; a bare number is `fixed`.
    pub fn parse(spec: &str) -> Result<LatencyDist, String> {
        let parts: Vec<&str> = spec.trim().split(':').map(str::trim).collect();
        let num = |s: &str| -> Result<f64, String> {
            let v: f64 = s
                .parse()
                .map_err(|_| format!("{s:?} is not a number (in {spec:?})"))?;
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(format!(
                    "{s:?} must be a non-negative number of milliseconds"
                ))
            }
        };
        let d = match parts.as_slice() {
            [v] => LatencyDist::Fixed(num(v)?),
            ["fixed", v] => LatencyDist::Fixed(num(v)?),
            ["uniform", lo, hi] => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if hi < lo {
                    return Err(format!(
                        "uniform:{lo}:{hi}: the high end is below the low end"
                    ));
                }
                LatencyDist::Uniform(lo, hi)
            }
            ["normal", mean, sd] => LatencyDist::Normal {
                mean: num(mean)?,
                sd: num(sd)?,
            },
            ["exp", mean] => LatencyDist::Exp { mean: num(mean)? },
            _ => {
                return Err(format!(
                    "{spec:?}: expected fixed:MS, uniform:LO:HI, normal:MEAN:SD or exp:MEAN"
                ));
            }
        };
        Ok(d)
    }

    /// One draw.
    pub fn sample(&self) -> Duration {
        let ms = match *self {
            LatencyDist::Fixed(ms) => ms,
            LatencyDist::Uniform(lo, hi) => lo + (hi - lo) * rand::random::<f64>(),
            LatencyDist::Normal { mean, sd } => {
                // Box-Muller; 1 - u keeps the logarithm finite.
                let u1 = 1.0 - rand::random::<f64>();
                let u2 = rand::random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                mean + sd * z
            }
            LatencyDist::Exp { mean } => -mean * (1.0 - rand::random::<f64>()).ln(),
        };
        if ms > 0.0 && ms.is_finite() {
            Duration::from_secs_f64(ms / 1000.0)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_refuses_nonsense() {
        assert_eq!(
            LatencyDist::parse("100").unwrap(),
            LatencyDist::Fixed(100.0)
        );
        assert_eq!(
            LatencyDist::parse("uniform:50:150").unwrap(),
            LatencyDist::Uniform(50.0, 150.0)
        );
        assert_eq!(
            LatencyDist::parse("normal:100:20").unwrap(),
            LatencyDist::Normal {
                mean: 100.0,
                sd: 20.0
            }
        );
        assert!(LatencyDist::parse("uniform:150:50").is_err());
        assert!(LatencyDist::parse("normal:100").is_err());
        assert!(LatencyDist::parse("fixed:-1").is_err());
        assert!(LatencyDist::parse("gamma:1:2").is_err());
    }

    #[test]
    fn samples_stay_in_range() {
        let u = LatencyDist::Uniform(50.0, 150.0);
        let n = LatencyDist::Normal {
            mean: 100.0,
            sd: 20.0,
        };
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let d = u.sample().as_secs_f64() * 1000.0;
            assert!((50.0..=150.0).contains(&d), "{d}");
            sum += n.sample().as_secs_f64() * 1000.0;
        }
        let mean = sum / 10_000.0;
        assert!((97.0..103.0).contains(&mean), "{mean}");
        assert_eq!(LatencyDist::Fixed(0.0).sample(), Duration::ZERO);
    }
}
