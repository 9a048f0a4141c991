//! Serving threads ("lanes"): which one the current thread is when the service runs a
//! single-threaded runtime per thread, and spreading a batch's items over all of them.
//!
//! Each lane runs the connections handed to it from start to end, so a request's work, its
//! provider connections and their readiness stay on one thread and no call wakes another thread.
//! Threads that are not lanes (a multi-threaded runtime, the `run` command, tests) are all lane 0,
//! and [`spawn`] there is `tokio::spawn`.

use std::cell::{Cell, RefCell};
use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

thread_local! {
    /// 1 + the lane, 0 off the lanes.
    static LANE: Cell<usize> = const { Cell::new(0) };
    /// Every lane's runtime, in lane order; empty on threads that are not lanes.
    static ALL: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as lane `lane` (from 0) of `all` (every lane's runtime, this one
/// included).
pub fn enter(lane: usize, all: Vec<Handle>) {
    LANE.with(|l| l.set(lane + 1));
    NEXT.with(|n| n.set(lane));
    ALL.with(|a| *a.borrow_mut() = all);
}

/// 1 + the calling thread's lane, or 0 on threads that are not lanes.
pub fn slot() -> usize {
    LANE.with(|l| l.get())
}

/// Spawns `task` on the next lane in turn, or on the current runtime off the lanes.
pub fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ALL.with(|all| {
        let all = all.borrow();
        if all.len() < 2 {
            return tokio::spawn(task);
        }
        let i = NEXT.with(|n| {
            let i = n.get();
            n.set((i + 1) % all.len());
            i
        });
        all[i % all.len()].spawn(task)
    })
}

/// How many lanes there are (0 on threads that are not lanes).
pub fn count() -> usize {
    ALL.with(|all| all.borrow().len())
}

/// Spawns `task` on lane `lane`.
///
/// # Panics
/// If `lane` is not below [`count`].
pub fn spawn_on<F>(lane: usize, task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ALL.with(|all| all.borrow()[lane].spawn(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three lanes, each a thread with a single-threaded runtime, as the service runs them.
    fn lanes(n: usize) -> (Vec<Handle>, Vec<std::sync::mpsc::Sender<()>>) {
        let runtimes: Vec<tokio::runtime::Runtime> = (0..n)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .collect();
        let handles: Vec<Handle> = runtimes.iter().map(|rt| rt.handle().clone()).collect();
        let mut stops = Vec::new();
        for (lane, rt) in runtimes.into_iter().enumerate() {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            stops.push(stop);
            let all = handles.clone();
            std::thread::spawn(move || {
                enter(lane, all);
                rt.block_on(async {
                    let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                });
            });
        }
        (handles, stops)
    }

    #[test]
    fn spawn_goes_round_the_lanes_from_the_one_after_the_caller() {
        let (handles, _stops) = lanes(3);
        let seen = handles[1]
            .block_on(handles[1].spawn(async {
                assert_eq!(slot(), 2, "the spawning task runs on lane 1");
                assert_eq!(count(), 3);
                let mut seen = Vec::new();
                for _ in 0..6 {
                    seen.push(spawn(async { slot() }).await.unwrap());
                }
                seen.push(spawn_on(0, async { slot() }).await.unwrap());
                seen
            }))
            .unwrap();
        assert_eq!(seen, vec![2, 3, 1, 2, 3, 1, 1]);
    }

    #[tokio::test]
    async fn off_the_lanes_spawn_is_tokio_spawn() {
        assert_eq!(slot(), 0);
        assert_eq!(count(), 0);
        assert_eq!(spawn(async { slot() }).await.unwrap(), 0);
    }
}
