//! The project's stand-in provider (`llm-judge-mock`, bench/mock-provider) as a process on a
//! loopback port: both chat APIs, both batch APIs, cached-token counts and `/stats`.
//!
//! The binary is another package of the workspace: `cargo nextest run --workspace` (and
//! `scripts/test`) builds it beside this package's; when it is missing, or older than its
//! sources, it is built with the same cargo that builds the tests, once per test process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The stand-in's binary, built beside this package's.
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let ours = PathBuf::from(env!("CARGO_BIN_EXE_llm-judge"));
            let path = ours.with_file_name("llm-judge-mock");
            if is_fresh(&path) {
                return path;
            }
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "llm-judge-mock",
                    "--bin",
                    "llm-judge-mock",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building llm-judge-mock failed");
            assert!(path.exists(), "{} was not built", path.display());
            path
        })
        .clone()
}

/// Whether the binary at `path` exists and is newer than every source file of the stand-in.
fn is_fresh(path: &std::path::Path) -> bool {
    fn newest(dir: &std::path::Path) -> Option<std::time::SystemTime> {
        let mut latest = None;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let p = entry.path();
            let t = if p.is_dir() {
                newest(&p)
            } else {
                entry.metadata().ok()?.modified().ok()
            };
            latest = latest.max(t);
        }
        latest
    }
    let Ok(built) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/mock-provider");
    let sources = newest(&crate_dir.join("src")).max(
        std::fs::metadata(crate_dir.join("Cargo.toml"))
            .and_then(|m| m.modified())
            .ok(),
    );
    sources.is_some_and(|s| built >= s)
}

/// A running stand-in, stopped when dropped.
pub struct Standin {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Standin {
    /// Starts the stand-in with these flags (one worker thread) on a free loopback port.
    pub fn start(flags: &[&str]) -> Standin {
        Standin::start_on(0, flags)
    }

    /// Starts the stand-in with these flags on loopback port `port` (0: a free one).
    pub fn start_on(port: u16, flags: &[&str]) -> Standin {
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(binary())
            .args(["--listen", listen.as_str(), "--threads", "1"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the stand-in starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Standin {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// The stand-in judging every item right ("Verdict: 1", 300 prompt and 9 completion
    /// tokens), with these flags besides.
    pub fn judging(flags: &[&str]) -> Standin {
        Standin::judging_on(0, flags)
    }

    /// [`Standin::judging`] on loopback port `port`.
    pub fn judging_on(port: u16, flags: &[&str]) -> Standin {
        let mut all = vec![
            "--text",
            "The candidate is right.\nVerdict: 1",
            "--prompt-tokens",
            "300",
            "--completion-tokens",
            "9",
        ];
        all.extend_from_slice(flags);
        Standin::start_on(port, &all)
    }

    /// Its `/stats`.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/stats", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider that is down on `port` (where a stand-in was): connections are accepted and
/// closed at once, and counted in `attempts`.
pub fn down_at(
    port: u16,
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(conn);
        }
    })
}
