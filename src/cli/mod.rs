//! The `llm-judge` command line: `serve` runs the HTTP service, `run` grades a whole file of
//! items (JSON Lines, gzip or CSV) in this process or through a running server, streaming,
//! resumable, with progress and a summary; `calibrate` measures judges against a file of labelled
//! items; `openapi` prints the service's document.
//!
//! - [`serve`]: the `serve` command (the service, its logs, its shutdown on a signal).
//! - [`record`]: one record of an input file, as the readers yield it.
//! - [`input`] and [`csv_rows`]: streaming readers yielding `(line number, item or why it is
//!   unreadable)`.
//! - [`output`]: the results file: resume and writing.
//! - [`engine`]: the bounded judging loop and signal handling.
//! - [`remote`]: `--server` mode through the batch endpoint.
//! - [`progress`] and [`report`]: what a person sees on standard error.
//! - [`run`]: the arguments, the checks before anything runs, and the exit code.
//! - [`calibrate`]: the `calibrate` command (judges against labelled items, with a gate).
//! - [`args`]: what `run` and `calibrate` share on the command line, and their exit codes.
//! - [`runtime`]: the tokio runtime every command runs on.

pub mod args;
pub mod calibrate;
pub mod csv_rows;
pub mod engine;
pub mod input;
pub mod output;
pub mod patience;
pub mod progress;
pub mod record;
pub mod remote;
pub mod report;
pub mod retry;
pub mod run;
pub mod runtime;
pub mod serve;

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "llm-judge",
    version,
    about = "Grades model outputs with LLM judges over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(serve::ServeArgs),
    /// Grade every item of a file (JSON Lines, gzip or CSV) and write one result line per item.
    Run(run::RunArgs),
    /// Measure judges against labelled items (accuracy, Cohen's kappa, correlations, bias) and
    /// gate on the figures.
    Calibrate(calibrate::CalibrateArgs),
    /// Print the OpenAPI document.
    Openapi,
}

/// Parses the command line and runs the command; the exit code is the command's.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            let doc = crate::api::openapi();
            let mut text = serde_json::to_string_pretty(&doc).expect("serialisable");
            text.push('\n');
            match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                // `llm-judge openapi | head`: the reader has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    ExitCode::from(args::EXIT_PIPE_CLOSED)
                }
                Err(e) => {
                    eprintln!("llm-judge openapi: cannot write: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run(args) => grade(run::run(args)),
        Command::Calibrate(args) => grade(calibrate::run(args)),
        Command::Serve(args) => serve::main(args),
    }
}

/// Runs a command that grades a file (`run`, `calibrate`) on the runtime, with its warnings
/// logged around its progress.
fn grade(command: impl Future<Output = ExitCode>) -> ExitCode {
    progress::init_run_tracing();
    match runtime::runtime(0) {
        Ok(rt) => rt.block_on(command),
        Err(e) => {
            eprintln!("llm-judge: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}
