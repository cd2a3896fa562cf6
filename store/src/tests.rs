use std::sync::Arc;

use super::*;

const NAMES: Table<String> = Table::new("names");
const SIZES: Table<u32> = Table::new("sizes");

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "rvs-store-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn put(db: &Db, k: &str, v: &str) -> Result<(), StoreError> {
    let mut b = Batch::new();
    b.put(&NAMES, k, &v.to_string());
    db.commit(b)
}

fn names(db: &Db) -> Vec<(String, String)> {
    db.read_all(&NAMES).unwrap()
}

#[test]
fn records_survive_reopen_and_a_missing_table_reads_empty() {
    let dir = TempDir::new("reopen");
    {
        let db = Db::open_dir(&dir.0).unwrap();
        assert!(db.read_all(&SIZES).unwrap().is_empty());
        let mut b = Batch::new();
        b.put(&NAMES, "a", &"alpha".to_string())
            .put(&SIZES, "a", &5)
            .put(&NAMES, "b", &"beta".to_string())
            .delete(&NAMES, "b");
        db.commit(b).unwrap();
    }
    let db = Db::open_dir(&dir.0).unwrap();
    assert_eq!(names(&db), vec![("a".into(), "alpha".into())]);
    assert_eq!(db.values(&SIZES).unwrap(), vec![5]);
}

#[test]
fn a_unit_commits_everything_at_its_end_or_nothing() {
    let db = Db::in_memory().unwrap();
    // Success: nothing visible until the unit returns, then all of it.
    db.unit(|| -> Result<(), StoreError> {
        put(&db, "a", "1")?;
        db.unit(|| put(&db, "b", "2"))?;
        assert!(
            names(&db).is_empty(),
            "a unit's changes are not written early"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(names(&db).len(), 2);
    // The body fails: nothing of it is written.
    let r = db.unit(|| -> Result<(), StoreError> {
        put(&db, "c", "3")?;
        Err(StoreError::Dir {
            path: "/x".into(),
            cause: std::io::Error::other("later step failed"),
        })
    });
    assert!(r.is_err());
    assert_eq!(names(&db).len(), 2);
    // The commit fails: nothing is written, and the error comes back.
    db.inject_write_failures(true);
    let r = db.unit(|| put(&db, "d", "4"));
    assert!(
        matches!(r, Err(StoreError::Db { op: "commit", .. })),
        "{r:?}"
    );
    db.inject_write_failures(false);
    assert_eq!(names(&db).len(), 2);
    assert!(!db.in_unit());
    // Outside a unit a commit is immediate.
    put(&db, "e", "5").unwrap();
    assert_eq!(names(&db).len(), 3);
}

#[test]
fn another_thread_waits_for_a_unit_and_is_not_part_of_it() {
    let db = Arc::new(Db::in_memory().unwrap());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let d = db.clone();
    let other = std::thread::spawn(move || {
        started_rx.recv().unwrap();
        // Blocks on the writer lock until the unit below has finished.
        put(&d, "other", "x").unwrap();
        d.read_all(&NAMES).unwrap().len()
    });
    let r = db.unit(|| -> Result<(), StoreError> {
        put(&db, "mine", "1")?;
        started_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        Err(StoreError::Dir {
            path: "/x".into(),
            cause: std::io::Error::other("abandon"),
        })
    });
    assert!(r.is_err());
    // The other thread's write landed on its own, after the unit.
    assert_eq!(other.join().unwrap(), 1);
    assert_eq!(names(&db), vec![("other".into(), "x".into())]);
}

#[test]
fn import_copies_the_named_tables_of_an_old_file() {
    let dir = TempDir::new("import");
    std::fs::create_dir_all(&dir.0).unwrap();
    let old_path = dir.0.join("old.redb");
    {
        let old = Db::open(&old_path).unwrap();
        let mut b = Batch::new();
        b.put(&NAMES, "x", &"ex".to_string()).put(&SIZES, "x", &9);
        old.commit(b).unwrap();
    }
    let db = Db::open_dir(&dir.0).unwrap();
    assert_eq!(db.import(&old_path, &["names", "absent"]).unwrap(), 1);
    assert_eq!(names(&db), vec![("x".into(), "ex".into())]);
    assert!(db.read_all(&SIZES).unwrap().is_empty());
}

#[test]
fn an_unreadable_record_names_its_table_and_key() {
    let db = Db::in_memory().unwrap();
    put(&db, "k", "not a number").unwrap();
    let wrong: Table<u32> = Table::new("names");
    let e = db.read_all(&wrong).unwrap_err().to_string();
    assert!(e.contains("names") && e.contains("\"k\""), "{e}");
}
