//! Failures a test injects into the store's writer: the next journal syncs or DuckDB commits
//! fail, as a full or failing disk would make them, so that the writer's failure paths can be
//! exercised. Nothing outside tests sets any; a check costs one atomic load, on paths that sync a
//! file or commit a transaction anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use duckdb::Connection;

/// Shared by a test and the writer it starts (clones share the counts). The default injects
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    syncs_to_fail: AtomicU64,
    commits_to_fail: AtomicU64,
    syncs_failed: AtomicU64,
    commits_failed: AtomicU64,
}

impl Faults {
    /// The next `n` syncs of the journal fail (`u64::MAX`: until told otherwise; 0: none).
    pub fn fail_syncs(&self, n: u64) {
        self.0.syncs_to_fail.store(n, Ordering::SeqCst);
    }

    /// The next `n` DuckDB commits of the writer fail, group commits and commits of journaled
    /// requests alike (`u64::MAX`: until told otherwise; 0: none).
    pub fn fail_commits(&self, n: u64) {
        self.0.commits_to_fail.store(n, Ordering::SeqCst);
    }

    /// How many journal syncs failed by injection so far.
    pub fn syncs_failed(&self) -> u64 {
        self.0.syncs_failed.load(Ordering::SeqCst)
    }

    /// How many commits failed by injection so far.
    pub fn commits_failed(&self) -> u64 {
        self.0.commits_failed.load(Ordering::SeqCst)
    }

    /// Before a journal sync: fails if a failure is due.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        if due(&self.0.syncs_to_fail, &self.0.syncs_failed) {
            return Err(std::io::Error::other("a sync failure injected by a test"));
        }
        Ok(())
    }

    /// Inside a commit's transaction, after its rows are appended: if a failure is due, DuckDB
    /// itself raises an error, so the transaction is rolled back as a real failure's would be.
    pub(crate) fn commit(&self, conn: &Connection) -> duckdb::Result<()> {
        if due(&self.0.commits_to_fail, &self.0.commits_failed) {
            return conn.execute_batch("SELECT error('a commit failure injected by a test')");
        }
        Ok(())
    }
}

/// Takes one failure if any is due, and counts it.
fn due(to_fail: &AtomicU64, failed: &AtomicU64) -> bool {
    let take = to_fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
        0 => None,
        u64::MAX => Some(u64::MAX),
        n => Some(n - 1),
    });
    if take.is_ok() {
        failed.fetch_add(1, Ordering::SeqCst);
    }
    take.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_as_many_failures_as_asked() {
        let faults = Faults::default();
        assert!(faults.sync().is_ok(), "none by default");
        faults.fail_syncs(2);
        assert!(faults.sync().is_err());
        assert!(faults.clone().sync().is_err(), "clones share the count");
        assert!(faults.sync().is_ok());
        assert_eq!(faults.syncs_failed(), 2);

        let conn = Connection::open_in_memory().expect("duckdb");
        faults.fail_commits(u64::MAX);
        for _ in 0..3 {
            let e = faults
                .commit(&conn)
                .expect_err("fails until told otherwise");
            assert!(e.to_string().contains("injected by a test"), "{e}");
        }
        faults.fail_commits(0);
        faults.commit(&conn).expect("no more failures");
        assert_eq!(faults.commits_failed(), 3);
    }
}
