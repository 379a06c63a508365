//! Exclusive advisory locks (`flock`) on files a run keeps writing, so that two runs never
//! write one file at once: the second is refused, naming the first's process when the kernel
//! says (`/proc/locks`).
//!
//! A file replaced by a rename is a new file: whoever replaces a locked file locks the new one
//! before the rename ([`crate::checkpoint::atomic`]'s `write_atomically_locked`), and
//! [`FileLock::acquire`] checks, once it holds a lock, that the path still names the file it
//! locked (else it locks again), so a lock never ends up on a file that is no longer there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file held under an exclusive lock for as long as this value lives.
#[derive(Debug)]
pub struct FileLock {
    /// Open for appending when this process may write it, else for reading.
    pub file: File,
    /// Whether `file` was opened for writing.
    pub writable: bool,
    /// Whether the file was created (empty) by [`FileLock::acquire`].
    pub created: bool,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it (its pid, when known).
    Busy(Option<u32>),
    /// The file could not be opened or locked.
    Io(io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            LockError::Busy(Some(pid)) => write!(f, "is in use by another run (pid {pid})"),
            LockError::Busy(None) => write!(f, "is in use by another run"),
            LockError::Io(e) => write!(f, "cannot be locked: {e}"),
        }
    }
}

impl FileLock {
    /// Locks the regular file at `path` (created empty when missing), without waiting.
    pub fn acquire(path: &Path) -> Result<FileLock, LockError> {
        // A path replaced between open and lock is tried again; a few times are plenty.
        for _ in 0..100 {
            let (file, writable, created) = open(path).map_err(LockError::Io)?;
            lock(&file)?;
            let held = file.metadata().map_err(LockError::Io)?;
            match std::fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(FileLock {
                        file,
                        writable,
                        created,
                    });
                }
                _ => continue,
            }
        }
        Err(LockError::Io(io::Error::other(
            "the file kept being replaced while locking it",
        )))
    }
}

fn open(path: &Path) -> io::Result<(File, bool, bool)> {
    let existed = std::fs::metadata(path).is_ok();
    match OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
    {
        Ok(file) => Ok((file, true, !existed)),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && existed => {
            Ok((File::open(path)?, false, false))
        }
        Err(e) => Err(e),
    }
}

/// Takes an exclusive lock on `file` without waiting.
pub fn lock(file: &File) -> Result<(), LockError> {
    loop {
        // SAFETY: flock on a descriptor `file` owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Err(LockError::Busy(holder(file))),
            _ => return Err(LockError::Io(e)),
        }
    }
}

/// The pid of the process holding a `flock` on `file`, from `/proc/locks` (Linux).
fn holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters' lines carry "->".
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str()))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let first = FileLock::acquire(&path).unwrap();
        assert!(first.created && first.writable);
        // Another open file description of the same file, as another process would hold.
        match FileLock::acquire(&path) {
            // The pid when /proc/locks names this file's device as stat does (not on overlayfs).
            Err(LockError::Busy(pid)) => assert!(pid.is_none_or(|p| p == std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = FileLock::acquire(&path).unwrap();
        assert!(!again.created);
    }
}
