//! What a chat call gets: its outcome, drawn from the fault mix (`--fail-*`).

use crate::cli::Cli;

/// What one chat call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    E429,
    E500,
    E503,
    E529,
    Timeout,
    Reset,
    Malformed,
}

pub const OUTCOMES: [Outcome; 8] = [
    Outcome::Ok,
    Outcome::E429,
    Outcome::E500,
    Outcome::E503,
    Outcome::E529,
    Outcome::Timeout,
    Outcome::Reset,
    Outcome::Malformed,
];

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::E429 => "429",
            Outcome::E500 => "500",
            Outcome::E503 => "503",
            Outcome::E529 => "529",
            Outcome::Timeout => "timeout",
            Outcome::Reset => "reset",
            Outcome::Malformed => "malformed",
        }
    }
}

/// The fault mix as cumulative thresholds over [0, 100).
pub struct FaultMix {
    thresholds: Vec<(f64, Outcome)>,
}

impl FaultMix {
    pub fn new(cli: &Cli) -> Result<FaultMix, String> {
        let parts = [
            (cli.fail_429, Outcome::E429, "--fail-429"),
            (cli.fail_500, Outcome::E500, "--fail-500"),
            (cli.fail_503, Outcome::E503, "--fail-503"),
            (cli.fail_529, Outcome::E529, "--fail-529"),
            (cli.fail_timeout, Outcome::Timeout, "--fail-timeout"),
            (cli.fail_reset, Outcome::Reset, "--fail-reset"),
            (cli.fail_malformed, Outcome::Malformed, "--fail-malformed"),
        ];
        let mut acc = 0.0;
        let mut thresholds = Vec::new();
        for (p, o, flag) in parts {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{flag} must be a percentage from 0 to 100"));
            }
            if p > 0.0 {
                acc += p;
                thresholds.push((acc, o));
            }
        }
        if acc > 100.0 + 1e-9 {
            return Err(format!(
                "the --fail-* percentages add up to {acc}, over 100"
            ));
        }
        Ok(FaultMix { thresholds })
    }

    pub fn pick(&self) -> Outcome {
        if self.thresholds.is_empty() {
            return Outcome::Ok;
        }
        let r = rand::random::<f64>() * 100.0;
        self.thresholds
            .iter()
            .find(|(t, _)| r < *t)
            .map_or(Outcome::Ok, |(_, o)| *o)
    }
}
