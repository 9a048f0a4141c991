//! Where the service's log lines go: a buffer in memory that a thread of its own writes out
//! (to stderr) in batches, so that logging a request costs it neither a write to stderr nor a
//! wake-up of another thread.
//!
//! A line is appended to the buffer under a short lock. The writer thread sleeps until the buffer
//! has something, lets lines gather for up to [`INTERVAL`], then writes them with one call. So a
//! line reaches stderr at most about 20 ms after it was logged, and a busy service makes one
//! write, and wakes the writer once, per interval instead of per line. Nothing is dropped: when
//! the output falls behind by 8 MiB (stderr blocked), logging waits for it. Dropping the
//! [`FlushGuard`] writes what is left and stops the thread (waiting at most a second for a
//! blocked output).

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The longest a line waits in memory before it is written.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Past this many bytes waiting, the writer is woken at once instead of at the end of its interval.
const SOON: usize = 256 * 1024;
/// Past this many bytes waiting, logging waits for the writer (the output is not keeping up).
const FULL: usize = 8 * 1024 * 1024;

struct State {
    buf: Vec<u8>,
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for lines (or for the buffer to pass `SOON`, or for closing).
    lines: Condvar,
    /// Loggers wait here for room, when `full` bytes are waiting.
    room: Condvar,
    full: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes behind; keep logging.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What `tracing_subscriber::fmt().with_writer(..)` takes: every line is one `write` into the
/// shared buffer.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Writes what is still waiting and stops the writer thread when dropped; keep it until exit.
pub struct FlushGuard {
    shared: Arc<Shared>,
    /// Closed by the writer thread when it has written everything and stopped.
    stopped: mpsc::Receiver<()>,
}

/// Starts the writer thread over `out`.
pub fn batched<W: Write + Send + 'static>(out: W) -> io::Result<(BatchedWriter, FlushGuard)> {
    with_limits(out, INTERVAL, FULL)
}

fn with_limits<W: Write + Send + 'static>(
    mut out: W,
    interval: Duration,
    full: usize,
) -> io::Result<(BatchedWriter, FlushGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: Vec::new(),
            closing: false,
        }),
        lines: Condvar::new(),
        room: Condvar::new(),
        full,
    });
    let s = shared.clone();
    let (stopping, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("llm-judge-log".into())
        .spawn(move || {
            let _stopping = stopping;
            let mut batch = Vec::new();
            loop {
                let mut st = s.lock();
                while st.buf.is_empty() && !st.closing {
                    st = s.lines.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if !st.closing && st.buf.len() < SOON {
                    st = s
                        .lines
                        .wait_timeout_while(st, interval, |st| st.buf.len() < SOON && !st.closing)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                std::mem::swap(&mut st.buf, &mut batch);
                let done = st.closing && batch.is_empty();
                drop(st);
                s.room.notify_all();
                if done {
                    let _ = out.flush();
                    return;
                }
                // A failed write (stderr closed) loses these lines; there is nowhere to report it.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
                // Keep one interval's worth of capacity, not the largest burst ever seen.
                batch.shrink_to(SOON);
            }
        })?;
    Ok((
        BatchedWriter {
            shared: shared.clone(),
        },
        FlushGuard { shared, stopped },
    ))
}

impl Write for BatchedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let s = &*self.shared;
        let mut st = s.lock();
        while st.buf.len() >= s.full && !st.closing {
            st = s.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let before = st.buf.len();
        st.buf.extend_from_slice(bytes);
        let after = st.buf.len();
        drop(st);
        // Only the first line of a batch and the one that crosses `SOON` wake the writer.
        if before == 0 || (before < SOON && after >= SOON) {
            s.lines.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.lines.notify_one();
        self.shared.room.notify_all();
        // Returns when the thread has ended (the channel closes); an output that stays blocked
        // does not hold up the exit for more than a second.
        let _ = self.stopped.recv_timeout(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// An output that records every write it is given.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().concat()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    #[test]
    fn every_line_from_every_thread_arrives_whole_and_in_order_per_thread() {
        let sink = Sink::default();
        let (w, guard) = batched(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..5000).collect::<Vec<_>>(), "thread {t}");
        }
        // Batched: far fewer writes than lines.
        assert!(sink.writes() < 20_000 / 10, "{} writes", sink.writes());
    }

    #[test]
    fn a_line_is_written_without_waiting_for_exit() {
        let sink = Sink::default();
        let (mut w, _guard) = batched(sink.clone()).unwrap();
        w.write_all(b"hello\n").unwrap();
        let started = Instant::now();
        while sink.bytes() != b"hello\n" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An output that takes nothing until it is let go.
    struct Gate {
        open: mpsc::Receiver<()>,
        opened: bool,
        sink: Sink,
    }

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if !self.opened {
                self.open.recv().unwrap();
                self.opened = true;
            }
            self.sink.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_makes_logging_wait_and_loses_nothing() {
        let (open, gate) = mpsc::channel();
        let sink = Sink::default();
        let out = Gate {
            open: gate,
            opened: false,
            sink: sink.clone(),
        };
        let (w, guard) = with_limits(out, Duration::from_millis(1), 1000).unwrap();
        let (done_tx, done) = mpsc::channel();
        let logger = std::thread::spawn(move || {
            let mut w = w;
            for i in 0..100 {
                w.write_all(format!("{i:099}\n").as_bytes()).unwrap();
            }
            done_tx.send(()).unwrap();
        });
        // 10,000 bytes against a limit of 1,000 and an output that takes nothing: the logger
        // waits, it does not drop lines.
        assert!(done.recv_timeout(Duration::from_millis(300)).is_err());
        open.send(()).unwrap();
        done.recv_timeout(Duration::from_secs(10)).unwrap();
        logger.join().unwrap();
        drop(guard);
        let text = String::from_utf8(sink.bytes()).unwrap();
        let got: Vec<usize> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
