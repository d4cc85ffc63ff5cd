//! Who holds the database when another process has it open: DuckDB locks its file for one
//! writing process, and a second collector on the same data directory must say which process
//! is in the way instead of passing DuckDB's message on.

use std::fmt;
use std::path::Path;

/// The process that holds the lock on a database file, as far as it could be found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// Its executable (or command), when known.
    pub program: Option<String>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.program {
            Some(program) => write!(f, "{program} (PID {})", self.pid),
            None => write!(f, "the process with PID {}", self.pid),
        }
    }
}

/// The holder for a message: `/usr/bin/millwatch (PID 4242)`, or "another process".
pub fn describe(holder: &Option<LockHolder>) -> String {
    holder
        .as_ref()
        .map_or_else(|| "another process".to_owned(), ToString::to_string)
}

/// Whether a DuckDB error message says the file is locked by someone else.
pub fn is_lock_conflict(message: &str) -> bool {
    message.contains("Could not set lock on file")
}

/// The holder named in DuckDB's lock message ("... Conflicting lock is held in
/// /usr/bin/millwatch (PID 4242) by user root. See also ..."), when it names one.
pub fn holder_from_message(message: &str) -> Option<LockHolder> {
    let (before, after) = message.split_once("(PID ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let pid = digits.parse().ok()?;
    let program = before
        .rsplit_once("lock is held in ")
        .map(|(_, p)| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    Some(LockHolder { pid, program })
}

/// The holder of a POSIX lock on `file` according to `/proc/locks` (Linux), for DuckDB
/// messages that do not name it.
pub fn holder_from_proc(file: &Path) -> Option<LockHolder> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = pid_locking(&locks, file_id(file)?)?;
    let program = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string());
    Some(LockHolder { pid, program })
}

/// (major, minor, inode) of a file, as `/proc/locks` writes them.
#[cfg(target_os = "linux")]
fn file_id(file: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(file).ok()?;
    let dev = meta.dev();
    // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Some((major, minor, meta.ino()))
}

#[cfg(not(target_os = "linux"))]
fn file_id(_file: &Path) -> Option<(u64, u64, u64)> {
    None
}

/// The PID of the first POSIX lock on the file `(major, minor, inode)` in the text of
/// `/proc/locks`: lines like `1: POSIX  ADVISORY  WRITE 4242 08:02:1311010 0 EOF`, where major
/// and minor are hexadecimal; waiting requests (`1: -> POSIX ...`) are skipped.
fn pid_locking(locks: &str, (major, minor, inode): (u64, u64, u64)) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"POSIX") {
            return None;
        }
        let pid = fields.get(4)?.parse::<u32>().ok()?;
        let mut id = fields.get(5)?.split(':');
        let found = (
            u64::from_str_radix(id.next()?, 16).ok()?,
            u64::from_str_radix(id.next()?, 16).ok()?,
            id.next()?.parse::<u64>().ok()?,
        );
        (found == (major, minor, inode)).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DuckDB 1.2's message when another process has the file open for writing.
    const DUCKDB: &str = "IO Error: Could not set lock on file \"/srv/mw/millwatch.duckdb\": \
        Conflicting lock is held in /usr/local/bin/millwatch (PID 4242) by user root. \
        See also https://duckdb.org/docs/current/connect/concurrency";

    #[test]
    fn the_holder_is_read_from_duckdbs_message() {
        assert!(is_lock_conflict(DUCKDB));
        assert_eq!(
            holder_from_message(DUCKDB),
            Some(LockHolder {
                pid: 4242,
                program: Some("/usr/local/bin/millwatch".into())
            })
        );
        let bare = "IO Error: Could not set lock on file \"x\": Conflicting lock is held in PID 17. See also";
        assert_eq!(holder_from_message(bare), None, "no `(PID n)`: not parsed");
        let no_program = "IO Error: Could not set lock on file \"x\": lock is held in  (PID 17)";
        assert_eq!(
            holder_from_message(no_program),
            Some(LockHolder {
                pid: 17,
                program: None
            })
        );
        assert!(!is_lock_conflict(
            "IO Error: Cannot open file \"x\": Permission denied"
        ));
        assert_eq!(
            holder_from_message("Catalog Error: Table with name x does not exist"),
            None
        );
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let locks = "\
1: POSIX  ADVISORY  WRITE 100 08:02:55 0 EOF
1: -> POSIX  ADVISORY  WRITE 300 fd:01:1311010 0 EOF
2: FLOCK  ADVISORY  WRITE 200 fd:01:1311010 0 EOF
3: POSIX  ADVISORY  WRITE 4242 fd:01:1311010 0 EOF
";
        assert_eq!(pid_locking(locks, (0xfd, 1, 1_311_010)), Some(4242));
        assert_eq!(pid_locking(locks, (8, 2, 55)), Some(100));
        assert_eq!(pid_locking(locks, (8, 3, 55)), None, "another device");
        assert_eq!(pid_locking("", (8, 2, 55)), None);
    }

    #[test]
    fn duckdbs_own_lock_is_found_in_proc_locks() {
        if !Path::new("/proc/locks").exists() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("mw-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("held.duckdb");
        // DuckDB holds an fcntl (POSIX) write lock on the file while it is open.
        let conn = duckdb::Connection::open(&path).expect("open");
        let holder = holder_from_proc(&path).expect("the lock is listed");
        assert_eq!(holder.pid, std::process::id());
        let exe = std::env::current_exe().expect("exe").display().to_string();
        assert_eq!(holder.program.as_deref(), Some(exe.as_str()));
        drop(conn);
        assert_eq!(holder_from_proc(&path), None, "released on close");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
