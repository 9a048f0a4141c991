//! Progress of `llm-judge run` on standard error: a live bar on a terminal, plain periodic lines
//! otherwise (CI logs), and a log writer that keeps log lines from tearing the bar.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often the plain reporter writes a line.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// The bar being drawn, if any, so that log lines can be printed around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Reports items done out of the items to judge in this run.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    done: u64,
    total: Option<u64>,
    accuracy: Option<f64>,
    /// Why items wait for their route, while some do.
    waiting: Option<String>,
}

impl Progress {
    /// A bar when standard error is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(style(false));
            bar.enable_steady_tick(Duration::from_millis(200));
            *ACTIVE_BAR.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last_line: now,
            done: 0,
            total: None,
            accuracy: None,
            waiting: None,
        }
    }

    /// The number of items this run will judge, once known.
    pub fn set_total(&mut self, total: u64) {
        if self.total == Some(total) {
            return;
        }
        self.total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_style(style(true));
            bar.set_length(total);
        }
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// One more item finished; `accuracy` is the accuracy so far.
    pub fn inc(&mut self, accuracy: Option<f64>) {
        self.done += 1;
        self.accuracy = accuracy;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(self.message());
        }
    }

    /// The bar's message: the accuracy so far, and why items wait, while some do.
    fn message(&self) -> String {
        let why = self
            .waiting
            .as_deref()
            .map_or(String::new(), |w| format!("; {w}"));
        format!("accuracy {}{why}", fmt_accuracy(self.accuracy))
    }

    /// Says (or stops saying) why items wait for their route.
    pub fn set_waiting(&mut self, waiting: Option<String>) {
        if self.waiting == waiting {
            return;
        }
        self.waiting = waiting;
        if let Some(bar) = &self.bar {
            bar.set_message(self.message());
        }
    }

    /// Writes a plain line when it is time (call it regularly).
    pub fn tick(&mut self) {
        if self.bar.is_none() && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    /// `progress: 1200/5000 items, 240.1/s, accuracy 0.8123, eta 16s`
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let total = self.total.map_or("?".to_string(), |t| t.to_string());
        let eta = match self.total {
            Some(t) if rate > 0.0 => {
                format!("{:.0}s", t.saturating_sub(self.done) as f64 / rate)
            }
            _ => "?".to_string(),
        };
        let waiting = self
            .waiting
            .as_ref()
            .map_or(String::new(), |w| format!("; {w}"));
        format!(
            "progress: {}/{total} items, {rate:.1}/s, accuracy {}, eta {eta}{waiting}",
            self.done,
            fmt_accuracy(self.accuracy)
        )
    }

    /// Prints a message without tearing the bar.
    pub fn println(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    /// Removes the bar (the summary follows).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *ACTIVE_BAR.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} items, {rate}, eta {eta}, {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {human_pos} items, {rate}, {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}/s", s.per_sec());
        })
}

pub fn fmt_accuracy(a: Option<f64>) -> String {
    a.map_or("n/a".to_string(), |a| format!("{a:.4}"))
}

/// Standard error for log lines, printed around the progress bar when one is drawn. Use it as
/// the tracing writer of `llm-judge run`.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `run` logs warnings only (level from RUST_LOG), printed around its progress bar.
pub fn init_run_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .compact()
        .init();
}
