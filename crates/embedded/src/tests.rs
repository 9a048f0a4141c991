//! The reopening database and its rate-limited warnings.

use std::time::Duration;

use redb::TableDefinition;

use super::*;

const T: TableDefinition<&str, u64> = TableDefinition::new("t");

fn init(db: &Database) -> Result<(), Failed> {
    let txn = db.begin_write().map_err(failed("begin"))?;
    txn.open_table(T).map_err(failed("open"))?;
    txn.commit().map_err(failed("commit"))
}

#[test]
fn writes_and_reads_go_through_and_health_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    let db = Reopening::open("test store", &dir.path().join("x.redb"), 1 << 20, init).unwrap();
    db.write(|txn| {
        let mut t = txn.open_table(T).map_err(failed("open"))?;
        t.insert("a", 1).map_err(failed("insert"))?;
        Ok(())
    })
    .unwrap();
    let got = db
        .read(|txn| {
            let t = txn.open_table(T).map_err(failed("open"))?;
            Ok(t.get("a").map_err(failed("get"))?.map(|v| v.value()))
        })
        .unwrap();
    assert_eq!(got, Some(1));
    assert!(db.health().is_ok());
}

#[test]
fn an_io_error_marks_it_failing_until_a_write_succeeds_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let db = Reopening::open("test store", &dir.path().join("x.redb"), 1 << 20, init).unwrap();
    let disk_full = |_: &redb::WriteTransaction| -> Result<(), Failed> {
        Err(Failed {
            message: "disk full".into(),
            io: true,
        })
    };
    assert!(db.write(disk_full).is_err());
    let health = db.health().unwrap_err();
    assert!(
        health.contains("test store") && health.contains("disk full"),
        "{health}"
    );
    // Reopened at the next call; a read alone says nothing of writing.
    db.read(|_| Ok(())).unwrap();
    assert!(db.health().is_err());
    // Failing again: within the retry interval the store does not reopen it.
    assert!(db.write(disk_full).is_err());
    assert!(db.read(|_| Ok(())).is_err());
    std::thread::sleep(RETRY_INTERVAL + Duration::from_millis(50));
    db.read(|_| Ok(())).unwrap();
    db.write(|_| Ok(())).unwrap();
    assert!(db.health().is_ok(), "a committed write: healthy again");
}

#[test]
fn a_warning_is_said_once_a_period_with_the_count_held_back() {
    let w = Warnings::every(Duration::from_millis(200));
    let mut said = Vec::new();
    for _ in 0..5 {
        w.warn(|held| said.push(held));
    }
    assert_eq!(said, [0]);
    std::thread::sleep(Duration::from_millis(250));
    w.warn(|held| said.push(held));
    assert_eq!(said, [0, 4]);
    w.reset();
    w.warn(|held| said.push(held));
    assert_eq!(said, [0, 4, 0]);
}
