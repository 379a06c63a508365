//! Writing files so that a crash or an error never leaves a half-written one behind.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to a temporary file in `path`'s directory, flushes it to disk, then renames it
/// over `path`. Until the rename nothing at `path` changes; the rename itself is atomic.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |message: String| Error::CheckpointWrite {
        path: path.to_owned(),
        message,
    };
    let dir = check_destination(path)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".burnfit-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail(e.to_string()))?;
    temp.write_all(bytes).map_err(|e| fail(e.to_string()))?;
    temp.as_file().sync_all().map_err(|e| fail(e.to_string()))?;
    temp.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

/// The directory a file at `path` would be written into, or why it cannot be.
pub fn check_destination(path: &Path) -> Result<&Path> {
    let fail = |message: String| Error::CheckpointWrite {
        path: path.to_owned(),
        message,
    };
    if path.is_dir() {
        return Err(fail("is a directory".into()));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(fail(format!("{} {why}", dir.display())));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_named_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/out.json");
        let err = write_atomically(&path, b"x").unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("no/such"),
            "{err}"
        );
    }
}
