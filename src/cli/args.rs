//! What the commands that grade a file (`run`, `calibrate`) share on the command line: the kind
//! of judgment, the accuracy a gate asks for, and the exit codes.

use clap::ValueEnum;

use llm_judge_judge::JudgeKind;

/// Exit code when the accuracy is under `--fail-under`, or nothing was graded correct or
/// incorrect.
pub const EXIT_FAIL_UNDER: u8 = 3;
/// Exit code for bad arguments, an unreadable input or configuration, or an unknown judge.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the run stopped on an error (the server gave up, the output cannot be written).
pub const EXIT_FAILED: u8 = 1;

/// The kind of judgment, as the command line names it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Binary,
    Score,
    Compare,
}

impl From<KindArg> for JudgeKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Binary => JudgeKind::Binary,
            KindArg::Score => JudgeKind::Score,
            KindArg::Compare => JudgeKind::Compare,
        }
    }
}

/// An accuracy: 0 to 1.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not an accuracy between 0 and 1")),
    }
}

/// The reader of the output went away (`| head`): 128 + SIGPIPE, as a process killed by it.
pub const EXIT_PIPE_CLOSED: u8 = 141;
