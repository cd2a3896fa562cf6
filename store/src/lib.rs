//! rvswitch's one state store: the whole desired state (the switch's bridge
//! domains, ports, static entries and routes, and the CNM layer's networks,
//! endpoints and pools) in ONE redb file, `<state-dir>/rvswitch.redb`.
//!
//! Owns: the file, typed tables (a [`Table`] names a redb table whose
//! values are JSON records of one Rust type), batches of changes and their
//! durable commit, and units of work: [`Db::unit`] gathers every batch
//! committed on the calling thread while it runs and writes them in one
//! transaction at its end, so a Docker driver call that adds a CNM endpoint
//! and the switch port behind it commits both or neither. Never: what the
//! records mean, validation, or the data plane.
//!
//! Every commit uses redb's default immediate durability (fsync before
//! `commit` returns): what was acknowledged survives `kill -9` and power
//! loss.
//!
//! # Writers
//! [`Db::exclusive`] runs a closure under the store's writer lock, which is
//! re-entrant: a unit holds it from start to commit, and the operations it
//! calls take it again on the same thread. Control-plane operations take
//! it before their own locks, so a unit and a plain operation never wait on
//! each other in opposite orders, and nobody reads a unit's half-made
//! changes to base an acknowledged change on.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::ReentrantMutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "rvswitch.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is part of the message (API errors carry only the text),
    // so it is not also exposed as `source`, which would print it twice.
    #[error("state store {path}: {op}: {cause}")]
    Db {
        path: String,
        op: &'static str,
        cause: Box<redb::Error>,
    },
    #[error("state store {path}: create directory: {cause}")]
    Dir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("state store {path}: {op}: {cause}")]
    File {
        path: PathBuf,
        op: &'static str,
        cause: std::io::Error,
    },
    #[error("state store {path}: record {key:?} in table {table} is unreadable: {reason}")]
    Corrupt {
        path: String,
        table: &'static str,
        key: String,
        reason: String,
    },
}

/// A table of JSON records of type `V`, keyed by a string.
pub struct Table<V> {
    name: &'static str,
    _v: PhantomData<fn() -> V>,
}

impl<V> Table<V> {
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            _v: PhantomData,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }
}

fn def(name: &str) -> TableDefinition<'_, &'static str, &'static str> {
    TableDefinition::new(name)
}

/// One change to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put {
        table: &'static str,
        key: String,
        value: String,
    },
    Delete {
        table: &'static str,
        key: String,
    },
}

/// Changes that commit together.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Store `value` under `key` (replacing what was there).
    pub fn put<V: Serialize>(&mut self, t: &Table<V>, key: &str, value: &V) -> &mut Self {
        self.ops.push(Op::Put {
            table: t.name,
            key: key.to_string(),
            value: serde_json::to_string(value).expect("records serialize"),
        });
        self
    }

    /// Remove `key` (nothing if it is not there).
    pub fn delete<V>(&mut self, t: &Table<V>, key: &str) -> &mut Self {
        self.ops.push(Op::Delete {
            table: t.name,
            key: key.to_string(),
        });
        self
    }

    pub fn append(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// The store's writer lock, held (see [`Db::exclusive_guard`]).
pub struct WriterGuard<'a>(#[allow(dead_code)] parking_lot::ReentrantMutexGuard<'a, ()>);

/// Distinguishes databases in the thread-local unit register.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The open unit of this thread: which database, and what it gathered.
    static UNIT: RefCell<Option<(usize, Batch)>> = const { RefCell::new(None) };
}

pub struct Db {
    db: Database,
    id: usize,
    /// For messages: the file, or `memory`.
    label: String,
    writer: ReentrantMutex<()>,
    /// Test hook: every commit fails while set (proves the rollbacks).
    fail_writes: AtomicBool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("label", &self.label).finish()
    }
}

impl Db {
    /// Open (or create) the store file `path`, its directory included.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| StoreError::Dir {
                path: dir.to_path_buf(),
                cause,
            })?;
        }
        let label = path.display().to_string();
        let db = Database::create(path).map_err(|e| StoreError::Db {
            path: label.clone(),
            op: "open",
            cause: Box::new(e.into()),
        })?;
        Ok(Db::init(db, label))
    }

    /// Open the store of a state directory (`<dir>/rvswitch.redb`).
    pub fn open_dir(dir: &Path) -> Result<Db, StoreError> {
        Db::open(&dir.join(STATE_FILE))
    }

    /// A store that lives and dies with the process (tests, dry runs).
    pub fn in_memory() -> Result<Db, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Db {
                path: "memory".into(),
                op: "open",
                cause: Box::new(e.into()),
            })?;
        Ok(Db::init(db, "memory".into()))
    }

    fn init(db: Database, label: String) -> Db {
        Db {
            db,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            label,
            writer: ReentrantMutex::new(()),
            fail_writes: AtomicBool::new(false),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Test hook: while `on`, every commit fails with an I/O error.
    pub fn inject_write_failures(&self, on: bool) {
        self.fail_writes.store(on, Ordering::Relaxed);
    }

    fn db_err(&self, op: &'static str) -> impl FnOnce(redb::Error) -> StoreError + '_ {
        move |e| StoreError::Db {
            path: self.label.clone(),
            op,
            cause: Box::new(e),
        }
    }

    /// Every record of `t`, in key order. A table never written is empty.
    pub fn read_all<V: DeserializeOwned>(
        &self,
        t: &Table<V>,
    ) -> Result<Vec<(String, V)>, StoreError> {
        let rows = (|| -> Result<Vec<(String, String)>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = match tx.open_table(def(t.name)) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut rows = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                rows.push((k.value().to_string(), v.value().to_string()));
            }
            Ok(rows)
        })()
        .map_err(self.db_err("read"))?;
        rows.into_iter()
            .map(|(key, v)| match serde_json::from_str(&v) {
                Ok(v) => Ok((key, v)),
                Err(e) => Err(StoreError::Corrupt {
                    path: self.label.clone(),
                    table: t.name,
                    key,
                    reason: e.to_string(),
                }),
            })
            .collect()
    }

    /// The records of `t` without their keys.
    pub fn values<V: DeserializeOwned>(&self, t: &Table<V>) -> Result<Vec<V>, StoreError> {
        Ok(self.read_all(t)?.into_iter().map(|(_, v)| v).collect())
    }

    /// Commit `batch` durably, or, inside a [`Db::unit`] on this thread,
    /// add it to the unit (it commits with the unit).
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let _w = self.writer.lock();
        // Staged into this thread's unit, or handed back to be written now.
        let unstaged = UNIT.with(|u| match &mut *u.borrow_mut() {
            Some((id, pending)) if *id == self.id => {
                pending.append(batch);
                None
            }
            _ => Some(batch),
        });
        match unstaged {
            None => Ok(()),
            Some(batch) => self.write(&batch),
        }
    }

    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        let run = || -> Result<(), redb::Error> {
            if self.fail_writes.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("injected write failure").into());
            }
            let tx = self.db.begin_write()?;
            for op in &batch.ops {
                match op {
                    Op::Put { table, key, value } => {
                        tx.open_table(def(table))?
                            .insert(key.as_str(), value.as_str())?;
                    }
                    Op::Delete { table, key } => {
                        tx.open_table(def(table))?.remove(key.as_str())?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        };
        run().map_err(self.db_err("commit"))
    }

    /// The writer lock, held until the guard drops (see [`Db::exclusive`]).
    pub fn exclusive_guard(&self) -> WriterGuard<'_> {
        WriterGuard(self.writer.lock())
    }

    /// Run `f` holding the writer lock (re-entrant on this thread).
    pub fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _w = self.writer.lock();
        f()
    }

    /// Run `f` as one unit of work: every batch committed on this thread
    /// while it runs is written in ONE transaction when it returns `Ok`;
    /// when it returns `Err`, or the commit fails, nothing is written (the
    /// caller brings memory and data plane back to the stored state). A
    /// unit inside a unit joins the outer one.
    pub fn unit<R, E: From<StoreError>>(&self, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
        let _w = self.writer.lock();
        let nested = UNIT.with(|u| {
            let mut u = u.borrow_mut();
            match &*u {
                Some((id, _)) if *id == self.id => true,
                Some(_) => panic!("a unit of work on two stores at once"),
                None => {
                    *u = Some((self.id, Batch::default()));
                    false
                }
            }
        });
        if nested {
            return f();
        }
        // Take the unit back whatever happens in `f` (even a panic).
        struct Close;
        impl Drop for Close {
            fn drop(&mut self) {
                UNIT.with(|u| u.borrow_mut().take());
            }
        }
        let close = Close;
        let r = f();
        let batch = UNIT
            .with(|u| u.borrow_mut().take())
            .map(|(_, b)| b)
            .unwrap_or_default();
        drop(close);
        let r = r?;
        if !batch.is_empty() {
            self.write(&batch)?;
        }
        Ok(r)
    }

    /// Whether a unit is open on this thread (for this store).
    pub fn in_unit(&self) -> bool {
        UNIT.with(|u| matches!(&*u.borrow(), Some((id, _)) if *id == self.id))
    }

    /// Copy every record of `tables` from the redb file `from` into this
    /// store in one transaction (a migration from an older layout).
    /// Returns how many records were copied.
    pub fn import(&self, from: &Path, tables: &[&'static str]) -> Result<usize, StoreError> {
        let _w = self.writer.lock();
        let label = from.display().to_string();
        let old = Database::open(from).map_err(|e| StoreError::Db {
            path: label.clone(),
            op: "open",
            cause: Box::new(e.into()),
        })?;
        let mut batch = Batch::default();
        (|| -> Result<(), redb::Error> {
            let tx = old.begin_read()?;
            for &name in tables {
                let t = match tx.open_table(def(name)) {
                    Ok(t) => t,
                    Err(TableError::TableDoesNotExist(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                for row in t.iter()? {
                    let (k, v) = row?;
                    batch.ops.push(Op::Put {
                        table: name,
                        key: k.value().to_string(),
                        value: v.value().to_string(),
                    });
                }
            }
            Ok(())
        })()
        .map_err(|e| StoreError::Db {
            path: label,
            op: "read for migration",
            cause: Box::new(e),
        })?;
        let n = batch.len();
        self.write(&batch)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
