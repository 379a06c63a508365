//! The one rule every subcommand's files follow: no output names an input or another output.
//!
//! A command lists the files it reads and the files it writes ([`FileRoles`]); [`FileRoles::check`]
//! refuses the command, before any work, when an output is the same file as any other path in
//! the list, however it is spelled: relative or absolute, through `./` or `..`, through a
//! symlink (followed, dangling ones too), or a hard link (an existing file is compared by device
//! and inode). Inputs may name each other (reading a file twice is harmless). Character devices
//! (`/dev/null`, a terminal) are exempt: writing two outputs there destroys nothing.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The files one command reads and writes, each with the flag that named it.
#[derive(Debug, Default)]
pub struct FileRoles {
    files: Vec<(String, PathBuf, Role)>,
    /// (input flag, output flag) pairs where the output may replace the input: `train
    /// --resume m.json --out m.json` continues a run in place.
    replaceable: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Input,
    Output,
}

/// What a path names on disk.
#[derive(Debug, PartialEq)]
enum Identity {
    /// An existing file: its device and inode.
    Inode(u64, u64),
    /// A character device: never a collision.
    Device,
    /// A file not there yet: its directory (resolved) and name.
    Missing(PathBuf),
    /// Unresolvable (a missing directory, a loop): compared as spelled.
    Spelled(PathBuf),
}

impl FileRoles {
    /// No files yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file the command reads, named by `flag`.
    pub fn input(mut self, flag: impl Into<String>, path: Option<&Path>) -> Self {
        if let Some(path) = path {
            self.files.push((flag.into(), path.to_owned(), Role::Input));
        }
        self
    }

    /// Every file of `paths`, read by the command, named by `flag`.
    pub fn inputs<'a>(mut self, flag: &str, paths: impl IntoIterator<Item = &'a PathBuf>) -> Self {
        for path in paths {
            self = self.input(flag, Some(path));
        }
        self
    }

    /// A file the command writes, named by `flag`.
    pub fn output(mut self, flag: impl Into<String>, path: Option<&Path>) -> Self {
        if let Some(path) = path {
            self.files
                .push((flag.into(), path.to_owned(), Role::Output));
        }
        self
    }

    /// Lets output `output` name the same file as input `input` (both as flags).
    pub fn replaceable(mut self, input: &'static str, output: &'static str) -> Self {
        self.replaceable.push((input, output));
        self
    }

    /// Refuses the first pair where an output and another file are the same file.
    pub fn check(&self) -> Result<()> {
        let ids: Vec<Identity> = self.files.iter().map(|(_, p, _)| identity(p)).collect();
        for (i, (flag_a, path_a, role_a)) in self.files.iter().enumerate() {
            for (j, (flag_b, _, role_b)) in self.files.iter().enumerate().skip(i + 1) {
                let writes = *role_a == Role::Output || *role_b == Role::Output;
                let allowed = self.replaceable.iter().any(|&(input, output)| {
                    (flag_a == input && flag_b == output) || (flag_a == output && flag_b == input)
                });
                if writes && !allowed && ids[i] != Identity::Device && ids[i] == ids[j] {
                    return Err(Error::SamePath {
                        first: flag_a.clone(),
                        second: flag_b.clone(),
                        path: path_a.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The file `path` names, symlinks followed (up to 40, as the kernel does).
fn identity(path: &Path) -> Identity {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let Ok(link) = std::fs::read_link(&current) else {
                    break;
                };
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            Ok(meta) if meta.file_type().is_char_device() => return Identity::Device,
            Ok(meta) => return Identity::Inode(meta.dev(), meta.ino()),
            Err(_) => {
                let dir = match current.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                return match (std::fs::canonicalize(dir), current.file_name()) {
                    (Ok(dir), Some(name)) => Identity::Missing(dir.join(name)),
                    _ => Identity::Spelled(current),
                };
            }
        }
    }
    Identity::Spelled(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(roles: FileRoles) -> String {
        roles.check().unwrap_err().to_string()
    }

    #[test]
    fn outputs_may_not_name_inputs_or_each_other_by_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let model = d.join("m.json");
        std::fs::write(&model, "{}").unwrap();
        std::os::unix::fs::symlink("m.json", d.join("link.csv")).unwrap();
        std::fs::hard_link(&model, d.join("hard.csv")).unwrap();
        std::os::unix::fs::symlink("fresh.svg", d.join("dangling.svg")).unwrap();
        for spelling in [
            model.clone(),
            d.join("./m.json"),
            d.join("sub/../m.json"),
            d.join("link.csv"),
            d.join("hard.csv"),
        ] {
            if spelling.to_string_lossy().contains("sub/") {
                std::fs::create_dir_all(d.join("sub")).unwrap();
            }
            let err = refused(
                FileRoles::new()
                    .input("--checkpoint", Some(&model))
                    .output("--out", Some(&spelling)),
            );
            assert_eq!(
                err,
                format!(
                    "--checkpoint and --out both name {}; give each its own file",
                    model.display()
                )
            );
        }
        // Two outputs, one through a dangling link to the other.
        let err = refused(
            FileRoles::new()
                .output("--json", Some(&d.join("fresh.svg")))
                .output("--plot", Some(&d.join("dangling.svg"))),
        );
        assert!(err.starts_with("--json and --plot both name"), "{err}");
        // Inputs may repeat; distinct files and /dev/null pass.
        FileRoles::new()
            .input("--data", Some(&model))
            .input("--checkpoint", Some(&d.join("link.csv")))
            .output("--out", Some(&d.join("other.csv")))
            .output("--json", Some(Path::new("/dev/null")))
            .output("--plot", Some(Path::new("/dev/null")))
            .check()
            .unwrap();
    }
}
