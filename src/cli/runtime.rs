//! The one multi-threaded tokio runtime every command runs on.

/// The runtime: `threads` workers (0: one per CPU).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::app::worker_threads(threads))
        .enable_all()
        .build()
}
