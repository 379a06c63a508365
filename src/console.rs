//! Standard output for the binary, without `println!`'s panic when the reader has gone away
//! (`burnfit train | head -1`) or the disk is full (`> /dev/full`).
//!
//! After the first failed write nothing more is printed and the error is kept: training goes on
//! and saves its checkpoint regardless, while commands whose output *is* the result (`predict`,
//! `inspect`) report it — except a closed pipe, which they take quietly, as Unix tools do.

use std::fmt::Display;
use std::io::{self, Write};

use crate::error::{Error, Result};

/// Lines to stdout (or, for a command whose stdout carries JSON, stderr) that never panic.
#[derive(Debug, Default)]
pub struct Console {
    lost: Option<io::Error>,
    to_stderr: bool,
}

impl Console {
    /// A console whose lines go to stderr: the human-readable lines of a command whose stdout
    /// is machine-readable (`train --json`).
    pub fn stderr() -> Self {
        Self {
            lost: None,
            to_stderr: true,
        }
    }

    /// Prints one line, unless an earlier line could not be written. Control characters in it
    /// (which a crafted checkpoint or path could carry: escape sequences, a forged newline) are
    /// shown escaped.
    pub fn line(&mut self, text: impl Display) {
        self.write(&escape_controls(&text.to_string()));
    }

    /// Prints text that is already safe to show as it is, on as many lines as it has (JSON from
    /// serde_json, whose strings escape every control character).
    pub fn block(&mut self, text: &str) {
        self.write(text);
    }

    /// Writes `bytes` exactly as they are (a CSV passed through: its bytes are the user's).
    pub fn raw(&mut self, bytes: &[u8]) {
        if self.lost.is_none()
            && let Err(error) = sink(self.to_stderr).write_all(bytes)
        {
            self.lost = Some(error);
        }
    }

    /// Hands what was printed to the reader now (stdout is line-buffered already; this is for
    /// [`Console::raw`] output and for a reader waiting on a partial line).
    pub fn flush(&mut self) {
        if self.lost.is_none()
            && let Err(error) = sink(self.to_stderr).flush()
        {
            self.lost = Some(error);
        }
    }

    fn write(&mut self, text: &str) {
        if self.lost.is_none()
            && let Err(error) = writeln!(sink(self.to_stderr), "{text}")
        {
            self.lost = Some(error);
        }
    }

    /// Whether a line could not be written (the reader went away, the disk is full).
    pub fn is_lost(&self) -> bool {
        self.lost.is_some()
    }

    /// For output that is the command's result: `Ok` when every line was written or the reader
    /// closed the pipe, else the write error.
    pub fn finish(mut self) -> Result<()> {
        if self.lost.is_none()
            && let Err(error) = sink(self.to_stderr).flush()
        {
            self.lost = Some(error);
        }
        match self.lost {
            Some(error) if error.kind() != io::ErrorKind::BrokenPipe => {
                Err(Error::Stdout(error.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// For log output next to a result saved elsewhere: a warning on stderr when lines were
    /// lost for any reason but a closed pipe.
    pub fn warn_if_lost(&self) {
        if let Some(error) = &self.lost
            && error.kind() != io::ErrorKind::BrokenPipe
        {
            let _ = writeln!(io::stderr(), "warning: stopped printing the log: {error}");
        }
    }
}

/// Where a console's lines go.
fn sink(to_stderr: bool) -> Box<dyn Write> {
    if to_stderr {
        Box::new(io::stderr().lock())
    } else {
        Box::new(io::stdout().lock())
    }
}

/// Whether `path` names the file this process's stdout writes to (`--out /dev/stdout`, or the
/// file stdout was redirected to): a status line printed there would end up inside the output.
pub fn is_stdout(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(stdout) = std::fs::metadata("/proc/self/fd/1") else {
        return false;
    };
    (target.dev(), target.ino()) == (stdout.dev(), stdout.ino())
}

/// `text` with every control character (newlines and escape sequences included) written as a
/// Rust escape (`\n`, `\u{1b}`), so that what a file or path holds prints as one harmless line.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("w = 2.5 — ok"), "w = 2.5 — ok");
        assert_eq!(
            escape_controls("x\nmodel: forged\u{1b}]0;title\u{7}"),
            "x\\nmodel: forged\\u{1b}]0;title\\u{7}"
        );
    }
}
