//! A precise timer for answer latencies: one thread that wakes each waiting call at its deadline.
//!
//! tokio's timer counts in whole milliseconds and rounds every deadline up to the next one, and
//! its driver wakes up later still: `tokio::time::sleep(100 ms)` returned after 100.6 to 101.6 ms
//! on the benchmark machine, and a stand-in that answers late looks like a slower service when
//! batches are measured against C / L. This thread waits on a condition variable with the exact
//! deadline (a futex with a high-resolution timeout on Linux) and wakes every call due at once
//! in one go. What is left is the operating system's own wake-up delay (0.2 to 0.6 ms for a plain
//! `thread::sleep` on that virtual machine); `/stats` reports the mean answer time that results.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Hands out precise sleeps; cheap to clone.
#[derive(Clone)]
pub struct Timer {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    due: BinaryHeap<Reverse<Entry>>,
}

/// A waiting call, ordered by its deadline alone: calls due at the same instant wake together.
struct Entry {
    at: Instant,
    done: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue stays consistent whatever panicked while holding it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Timer {
    /// Starts the timer thread; it lives as long as the process.
    pub fn start() -> std::io::Result<Timer> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("mock-timer".into())
            .spawn(move || run(&worker))?;
        Ok(Timer { inner })
    }

    /// Returns `delay` after the call, or as soon after it as the operating system wakes the
    /// timer thread.
    pub async fn sleep(&self, delay: Duration) {
        let at = Instant::now() + delay;
        let (done, fired) = oneshot::channel();
        let earliest = {
            let mut q = self.inner.lock();
            let earliest = q.due.peek().is_none_or(|Reverse(first)| at < first.at);
            q.due.push(Reverse(Entry { at, done }));
            earliest
        };
        if earliest {
            self.inner.wake.notify_one();
        }
        // The sender is only dropped after sending; an error cannot happen while the thread runs.
        let _ = fired.await;
    }
}

fn run(inner: &Inner) {
    let mut fired: Vec<oneshot::Sender<()>> = Vec::new();
    let mut q = inner.lock();
    loop {
        let now = Instant::now();
        while q.due.peek().is_some_and(|Reverse(first)| first.at <= now) {
            if let Some(Reverse(entry)) = q.due.pop() {
                fired.push(entry.done);
            }
        }
        if !fired.is_empty() {
            drop(q);
            for done in fired.drain(..) {
                // A call whose connection closed has dropped its receiver: nothing to wake.
                let _ = done.send(());
            }
            q = inner.lock();
            continue;
        }
        q = match q.due.peek() {
            Some(Reverse(first)) => {
                let wait = first.at.saturating_duration_since(now);
                inner
                    .wake
                    .wait_timeout(q, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => inner.wake.wait(q).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_every_sleeper_at_its_deadline_not_before() {
        let timer = Timer::start().unwrap();
        // Later deadlines first, so the thread has to be woken for each new earliest one.
        let delays = [40u64, 30, 20, 10, 0, 25];
        let mut calls = Vec::new();
        for ms in delays {
            let t = timer.clone();
            calls.push(tokio::spawn(async move {
                let start = Instant::now();
                t.sleep(Duration::from_millis(ms)).await;
                (ms, start.elapsed())
            }));
        }
        for call in calls {
            let (ms, took) = call.await.unwrap();
            let want = Duration::from_millis(ms);
            assert!(took >= want, "{ms} ms returned after {took:?}");
            // Generous: a busy test machine may delay a wake-up, but not by 30 ms.
            assert!(
                took < want + Duration::from_millis(30),
                "{ms} ms took {took:?}"
            );
        }
    }
}
