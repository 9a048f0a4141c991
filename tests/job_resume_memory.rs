//! Resuming a job holds none of its stored results in memory: this test binary counts every
//! allocation, and resuming a job with 20,000 stored results (about 25 MB of them) may allocate
//! no more at its peak than the store's page cache and a little more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llm_judge_judge::JudgeKind;
use llm_judge_work::jobs::embedded::Store;
use llm_judge_work::jobs::{JobRecord, JobSettings, JobStatus, Jobs};

/// The system allocator, counting the bytes allocated now and at the peak.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = NOW.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            NOW.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESULTS: u64 = 20_000;
const CACHE: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_job_does_not_hold_its_results_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let id = "job_resume_memory";
    {
        // A job that was running when the process stopped, with every result committed.
        let store = Store::open(dir.path(), CACHE).unwrap();
        let record = JobRecord {
            id: id.into(),
            status: JobStatus::Running,
            kind: JudgeKind::Binary,
            route: "rules".into(),
            max_concurrent: 4,
            total: RESULTS,
            created_at_ms: 1,
            finished_at_ms: None,
            idempotency_key: None,
            request_digest: None,
            committed: 0,
            summary: None,
            error: None,
            counts: None,
            provider_batch: false,
            provider_batch_deadline_s: None,
            provider_batches: Vec::new(),
            budget: None,
            driver: None,
            batch_submits: Vec::new(),
            client: None,
            owner: None,
            upload_seen_ms: None,
            max_wait_s: None,
        };
        let item = serde_json::json!({"question": "q", "answer": "4", "prediction": "4"});
        let items = vec![item; RESULTS as usize];
        assert!(matches!(
            store.create(record, &items).unwrap(),
            llm_judge_work::jobs::Created::New(_)
        ));
        let raw = "The candidate gives the reference answer. ".repeat(30);
        for first in (0..RESULTS).step_by(1000) {
            let entries: Vec<(u64, Vec<u8>)> = (first..first + 1000)
                .map(|i| {
                    let v = serde_json::json!({"index": i, "status": "ok", "verdict": "correct",
                        "result": 1, "raw": format!("{raw}{i}")});
                    (i, serde_json::to_vec(&v).unwrap())
                })
                .collect();
            store.commit_results(id, first, &entries).unwrap();
        }
    }

    let settings = llm_judge::config::Settings::defaults();
    let judge = llm_judge::build_judge(&settings).unwrap();
    let jobs = Jobs::open(
        JobSettings {
            data_dir: dir.path().into(),
            retention: Duration::from_secs(3600),
            janitor_interval: Duration::from_secs(3600),
            commit_interval: Duration::from_millis(10),
            cache_bytes: CACHE,
            max_item_attempts: 10,
            max_wait: Duration::from_secs(3600),
        },
        judge,
    )
    .unwrap();
    let before = NOW.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    assert_eq!(jobs.start().await.unwrap(), 1, "the job is resumed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let v = jobs.get(id, None).await.unwrap().unwrap();
        if v.status.is_finished() {
            break v;
        }
        assert!(Instant::now() < deadline, "the resumed job did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let peak = PEAK.load(Ordering::Relaxed) - before;
    eprintln!("resume peak: {:.2} MB", peak as f64 / 1e6);
    assert_eq!(done.status, JobStatus::Completed);
    let summary = done.summary.unwrap();
    assert_eq!(
        summary["correct"], RESULTS,
        "every stored result is counted: {summary}"
    );
    assert_eq!(done.progress.done, RESULTS as usize);
    // The stored results are about 25 MB; holding them as JSON values took more than that.
    assert!(
        peak < 6 << 20,
        "resuming allocated {:.1} MB at its peak",
        peak as f64 / 1e6
    );
    drop(Arc::clone(&jobs));
}
