//! The `llm-judge` command line: `serve` runs the HTTP service, `run` grades a file of items,
//! `calibrate` measures judges against labelled items, `openapi` prints the service's document.

/// jemalloc instead of the system allocator: the service makes many small, short-lived
/// allocations per judged item (requests, JSON, headers) across threads, where glibc's malloc
/// spent about a quarter of the CPU in profiles. Measured against mimalloc, it used as little
/// CPU per item and kept less memory resident with thousands of calls in flight (BENCHMARKS.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    llm_judge::cli::main()
}
