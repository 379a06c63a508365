//! Writing files so that a crash or an error never leaves a half-written one behind, and never
//! destroys what is not ours to replace.
//!
//! The rules, in order:
//! - a symlink is followed: the file it points to is replaced (atomically, with the temporary
//!   file beside the target), and the link itself is kept;
//! - a character device or a FIFO (`/dev/null`, a pipe) is written straight through, never
//!   renamed over; `/dev/stdout`, `/dev/fd/N` and `/proc/self/fd/N` are written through this
//!   process's own descriptor (so `>> log` appends); any other non-regular file is refused;
//! - a file this process may not write (or that nobody may write: `chmod a-w`) is refused
//!   unless forced;
//! - a regular file is written to a temporary file `.burnfit-*.tmp` in its directory, flushed to
//!   disk, and renamed over the destination. A replaced file keeps its permission bits; a new one
//!   gets `0666 & !umask`, as any program's new file does;
//! - temporary files of ours that a killed process left behind (older than
//!   [`STALE_TEMP_AGE`]) are removed the first time this process writes into that directory.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};

/// Prefix and suffix of our temporary files.
const TEMP_PREFIX: &str = ".burnfit-";
const TEMP_SUFFIX: &str = ".tmp";

/// A temporary file of ours older than this is left over from a killed process (a save takes
/// milliseconds), and is removed.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);

/// Where the bytes for a path go.
#[derive(Debug, PartialEq)]
enum Destination {
    /// A regular file, existing or not, at this (symlink-resolved) path, in this directory.
    Regular { path: PathBuf, dir: PathBuf },
    /// A character device or FIFO: opened and written in place.
    Stream(PathBuf),
    /// One of this process's open files (`/dev/stdout`, `/proc/self/fd/N`, `/dev/fd/N`):
    /// written through that descriptor, at its offset and in its mode (`>> log` appends).
    OpenFile(i32),
}

/// Writes `bytes` to `path` by the rules of this module: the destination is either the complete
/// new content or, on any error, exactly what it was before. A write-protected file (no write
/// permission for anyone) is refused unless `force`.
pub fn write_atomically(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let fail = |message: String| write_error(path, message);
    match resolve(path, force)? {
        Destination::Stream(target) => {
            let mut file = open_stream(&target).map_err(fail)?;
            file.write_all(bytes)
                .and_then(|()| file.flush())
                .map_err(|e| fail(e.to_string()))
        }
        Destination::OpenFile(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: `dup` of a descriptor this process holds; the File owns the duplicate.
            let copy = unsafe { libc::dup(fd) };
            if copy < 0 {
                return Err(fail(std::io::Error::last_os_error().to_string()));
            }
            // SAFETY: `copy` is a fresh descriptor owned by nothing else.
            let mut file = unsafe { fs::File::from_raw_fd(copy) };
            file.write_all(bytes)
                .and_then(|()| file.flush())
                .map_err(|e| fail(e.to_string()))
        }
        Destination::Regular { path: target, dir } => {
            write_regular(&target, &dir, bytes, false).map_err(|e| fail(e.to_string()))?;
            Ok(())
        }
    }
}

/// [`write_atomically`] for a regular file that stays locked ([`crate::file_lock`]): the new
/// file is locked before it replaces the old one, so no other process can take it in between;
/// returns it open, positioned at its end, holding the lock.
pub fn write_atomically_locked(path: &Path, bytes: &[u8], force: bool) -> Result<fs::File> {
    let fail = |message: String| write_error(path, message);
    match resolve(path, force)? {
        Destination::Regular { path: target, dir } => {
            write_regular(&target, &dir, bytes, true).map_err(|e| fail(e.to_string()))
        }
        _ => Err(fail("is not a regular file".into())),
    }
}

/// [`write_atomically`] for output made as it is written (rows in, rows out): `write` gets the
/// destination's writer. A regular file is the temporary file, renamed over `path` only when
/// `write` succeeds; on its error the temporary is removed and `path` is untouched. A device,
/// FIFO or open descriptor (`/dev/stdout`) receives the bytes as they come, as a stream does.
/// `write`'s I/O errors are its own to report; this adds `path`'s own.
pub fn write_atomically_with<T>(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let fail = |message: String| write_error(path, message);
    match resolve(path, force)? {
        Destination::Stream(target) => {
            let file = open_stream(&target).map_err(fail)?;
            write_through(file, path, write)
        }
        Destination::OpenFile(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: `dup` of a descriptor this process holds; the File owns the duplicate.
            let copy = unsafe { libc::dup(fd) };
            if copy < 0 {
                return Err(fail(std::io::Error::last_os_error().to_string()));
            }
            // SAFETY: `copy` is a fresh descriptor owned by nothing else.
            write_through(unsafe { fs::File::from_raw_fd(copy) }, path, write)
        }
        Destination::Regular { path: target, dir } => {
            let mut temp = new_temp(&target, &dir).map_err(|e| fail(e.to_string()))?;
            // An error drops `temp`, which removes it.
            let value = {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, temp.as_file_mut());
                let value = write(&mut out)?;
                out.flush().map_err(|e| fail(e.to_string()))?;
                value
            };
            // A second stop signal during the rename waits for it.
            crate::signals::while_saving(|| persist(temp, &target, &dir, false))
                .map_err(|e| fail(e.to_string()))?;
            Ok(value)
        }
    }
}

/// A character device or FIFO opened for writing. Opening a FIFO waits for a reader; the wait
/// here is in short naps, so that a stop signal ends it (a blocked `open` would restart after
/// the handler and wait on): the error then says so, and a checkpoint goes to its fallback file.
fn open_stream(target: &Path) -> std::result::Result<fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let is_fifo = fs::metadata(target).is_ok_and(|m| m.file_type().is_fifo());
    if !is_fifo {
        return OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| e.to_string());
    }
    let signals_before = crate::signals::taken();
    loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(target)
        {
            Ok(file) => {
                use std::os::fd::AsRawFd;
                // Writes block again, as for any stream: a reader that is slow is waited for.
                // SAFETY: fcntl on a descriptor `file` owns.
                unsafe {
                    let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
                    libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
                }
                return Ok(file);
            }
            // No reader yet.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if crate::signals::taken() != signals_before {
                    return Err(
                        "interrupted while waiting for a reader of this FIFO; nothing was written to it"
                            .into(),
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `write` into `file` (a stream: what is written stays written), buffered.
fn write_through<T>(
    file: fs::File,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    let value = write(&mut out)?;
    out.flush().map_err(|e| write_error(path, e.to_string()))?;
    Ok(value)
}

/// A new temporary file beside `target`, with `target`'s permission bits when it exists.
fn new_temp(target: &Path, dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    remove_stale_temps_once(dir);
    let existing_mode = fs::metadata(target).ok().map(|m| m.permissions().mode());
    let temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        // Created with this mode, the umask applies, as for any new file.
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(mode) = existing_mode {
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(temp)
}

/// A temporary file beside `target`, written and flushed to disk, (locked,) renamed over it. A
/// second stop signal meanwhile (milliseconds) waits for it to finish: a signal never leaves
/// the temporary file behind.
fn write_regular(target: &Path, dir: &Path, bytes: &[u8], lock: bool) -> std::io::Result<fs::File> {
    crate::signals::while_saving(|| {
        let mut temp = new_temp(target, dir)?;
        temp.write_all(bytes)?;
        persist(temp, target, dir, lock)
    })
}

/// `temp`, written, flushed to disk, (locked,) renamed over `target`.
fn persist(
    temp: tempfile::NamedTempFile,
    target: &Path,
    dir: &Path,
    lock: bool,
) -> std::io::Result<fs::File> {
    temp.as_file().sync_all()?;
    if lock {
        crate::file_lock::lock(temp.as_file()).map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    let file = temp.persist(target).map_err(|e| e.error)?;
    // The rename itself reaches the disk only with its directory (best effort: some file
    // systems cannot sync a directory).
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(file)
}

/// Fails early, before any work, when `path` cannot receive a file: a directory, a special file
/// that is neither a character device nor a FIFO, a missing directory, or a directory this
/// process cannot create files in (probed by creating and removing a temporary file).
pub fn check_destination(path: &Path, force: bool) -> Result<()> {
    if let Destination::Regular { dir, .. } = resolve(path, force)? {
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(&dir)
            .map_err(|e| {
                write_error(
                    path,
                    format!("cannot create files in {}: {e}", dir.display()),
                )
            })?;
    }
    Ok(())
}

fn write_error(path: &Path, message: String) -> Error {
    Error::CheckpointWrite {
        path: path.to_owned(),
        message,
    }
}

/// Follows symlinks (up to 40, as the kernel does) to the file that will really be written.
fn resolve(path: &Path, force: bool) -> Result<Destination> {
    let fail = |message: String| write_error(path, message);
    // `out.json/` names a directory, never a file (the kernel would say so only at the write).
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(fail("ends with `/`: a file's name cannot".into()));
    }
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            // Missing, or under a parent that is a file: `regular` names which.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return regular(path, current);
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let kind = meta.file_type();
        if let Some(fd) = own_descriptor(&current) {
            return Ok(Destination::OpenFile(fd));
        }
        if kind.is_symlink() {
            let link = fs::read_link(&current).map_err(|e| fail(e.to_string()))?;
            // `/dev/stdout` → `/proc/self/fd/1` → `pipe:[123]`: a link into /proc names
            // something that exists only as an open file; what it is decides, not its name.
            if let Ok(target_meta) = fs::metadata(&current)
                && !target_meta.is_file()
                && !target_meta.is_dir()
            {
                return special(path, current, target_meta.file_type());
            }
            current = match current.parent() {
                Some(parent) if link.is_relative() => parent.join(link),
                _ => link,
            };
            continue;
        }
        if kind.is_dir() {
            return Err(fail("is a directory".into()));
        }
        if kind.is_file() {
            let mode = meta.permissions().mode();
            let access = access_for_us(&current);
            if access == Access::ReadOnlyFileSystem {
                // --force cannot help there: no file in it can be replaced.
                return Err(fail(format!(
                    "{} is on a read-only file system",
                    current.display()
                )));
            }
            let why = if mode & 0o222 == 0 {
                Some("is write-protected")
            } else if access == Access::Denied {
                Some("is not writable by this user")
            } else {
                None
            };
            if let Some(why) = why
                && !force
            {
                return Err(fail(format!(
                    "{} {why} (mode {:o}); pass --force to replace it",
                    current.display(),
                    mode & 0o7777
                )));
            }
            return regular(path, current);
        }
        return special(path, current, kind);
    }
    Err(fail("too many levels of symbolic links".into()))
}

/// The descriptor behind `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or `/proc/self/fd/N`:
/// those name an open file of this process, which must be written through, never replaced by
/// its path (that would clobber a redirected `>> log` from its start, or replace it).
fn own_descriptor(path: &Path) -> Option<i32> {
    let text = path.to_str()?;
    let number = match text {
        "/dev/stdin" => return Some(0),
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => text
            .strip_prefix("/dev/fd/")
            .or_else(|| text.strip_prefix("/proc/self/fd/"))
            .or_else(|| {
                let own = format!("/proc/{}/fd/", std::process::id());
                text.strip_prefix(own.as_str()).map(|_| &text[own.len()..])
            })?,
    };
    number.parse().ok()
}

/// Whether this process may write to the file (its effective ids; root may write anything,
/// which the mode check above catches for `chmod a-w` files).
fn access_for_us(path: &Path) -> Access {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Access::Denied;
    };
    // SAFETY: a valid C string; faccessat only reads it.
    let writable = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::W_OK,
            libc::AT_EACCESS,
        ) == 0
    };
    match writable {
        true => Access::Writable,
        false if std::io::Error::last_os_error().raw_os_error() == Some(libc::EROFS) => {
            Access::ReadOnlyFileSystem
        }
        false => Access::Denied,
    }
}

/// Whether this process may write a file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    Writable,
    /// Its permissions say no (to this user).
    Denied,
    /// It is on a file system mounted read-only.
    ReadOnlyFileSystem,
}

/// Writes `bytes` to a new file with a random name `PREFIX*SUFFIX` in the system's temporary
/// directory, created exclusively and written through its descriptor (no path is followed, so
/// a planted symlink cannot redirect it), and returns its path.
pub fn write_new_temp_file(prefix: &str, suffix: &str, bytes: &[u8]) -> Result<PathBuf> {
    let dir = std::env::temp_dir();
    let fail = |message: String| write_error(&dir, message);
    let mut file = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(|e| fail(e.to_string()))?;
    file.write_all(bytes).map_err(|e| fail(e.to_string()))?;
    file.as_file().sync_all().map_err(|e| fail(e.to_string()))?;
    let (_, path) = file.keep().map_err(|e| fail(e.error.to_string()))?;
    Ok(path)
}

fn special(path: &Path, target: PathBuf, kind: fs::FileType) -> Result<Destination> {
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Destination::Stream(target));
    }
    let what = if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(write_error(
        path,
        format!("{} is {what}; refusing to write to it", target.display()),
    ))
}

/// A regular destination: its directory must exist.
fn regular(path: &Path, target: PathBuf) -> Result<Destination> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(write_error(path, format!("{} {why}", dir.display())));
    }
    Ok(Destination::Regular { path: target, dir })
}

/// Removes our stale temporary files from `dir`, once per directory per process (a run that
/// saves every step must not list its directory every step).
fn remove_stale_temps_once(dir: &Path) {
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut cleaned = CLEANED.lock().unwrap_or_else(|p| p.into_inner());
        if !cleaned.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    remove_stale_temps(dir, STALE_TEMP_AGE);
}

/// Removes files in `dir` named like our temporary files and not modified for `age`.
/// Best effort: a file that cannot be removed stays.
pub(crate) fn remove_stale_temps(dir: &Path, age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let old_enough = entry
            .metadata()
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed >= age);
        if old_enough {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, b"old").unwrap();
        write_atomically(&path, b"new", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_named_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/out.json");
        let err = write_atomically(&path, b"x", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("no/such"),
            "{err}"
        );
    }

    #[test]
    fn a_symlink_is_kept_and_its_target_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        fs::create_dir(&real_dir).unwrap();
        let target = real_dir.join("model.json");
        fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real/model.json", &link).unwrap();
        write_atomically(&link, b"new", false).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // A dangling link creates its target.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("real/fresh.json", &dangling).unwrap();
        write_atomically(&dangling, b"fresh", false).unwrap();
        assert_eq!(fs::read(real_dir.join("fresh.json")).unwrap(), b"fresh");
        assert!(
            fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn modes_follow_the_umask_and_replaced_files_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.json");
        write_atomically(&fresh, b"x", false).unwrap();
        let umask = current_umask();
        assert_eq!(
            fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o666 & !umask
        );
        let kept = dir.path().join("kept.json");
        fs::write(&kept, b"old").unwrap();
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&kept, b"new", false).unwrap();
        assert_eq!(
            fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    /// The umask, read from /proc (setting it would race with other tests' file creation).
    fn current_umask() -> u32 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
    }

    #[test]
    fn a_fifo_is_written_through_and_stays_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(&fifo).unwrap())
        };
        write_atomically(&fifo, b"through", false).unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_write_protected_file_is_replaced_only_when_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let err = write_atomically(&path, b"new", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("write-protected") && err.contains("--force"),
            "{err}"
        );
        assert!(check_destination(&path, false).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        write_atomically(&path, b"new", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }

    #[test]
    fn only_old_temporaries_of_ours_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".burnfit-old.tmp", "keep.tmp", ".burnfit-x.json"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_temps(dir.path(), Duration::from_secs(3600));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
        remove_stale_temps(dir.path(), Duration::ZERO);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".burnfit-x.json", "keep.tmp"]);
    }
}
