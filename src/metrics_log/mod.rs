//! The training metrics file: one row per logged step, as CSV or JSON Lines (the extension
//! decides), appended a line at a time so that a run that crashes or is interrupted keeps its
//! history, and read back by [`read_metrics`] to plot it.
//!
//! The columns are `step`, `loss`, `elapsed_s` (seconds since this process started training,
//! 6 decimals: a resumed run counts from 0 again), `lr`, then the run's extra columns in the
//! order given to [`MetricsLog::create`] (e.g. [`VAL_LOSS`]). A row without a value for an extra
//! column has an empty cell in CSV and no key in JSON Lines; a JSON Lines file has no header,
//! its columns are the keys of its rows:
//!
//! ```text
//! step,loss,elapsed_s,lr,val_loss
//! 10,0.52,0.001234,0.01,
//! 20,0.31,0.002468,0.01,0.33
//! ```
//! ```text
//! {"step":10,"loss":0.52,"elapsed_s":0.001234,"lr":0.01}
//! {"step":20,"loss":0.31,"elapsed_s":0.002468,"lr":0.01,"val_loss":0.33}
//! ```
//!
//! Numbers are written in the shortest form that reads back to the same value (`1e-7`, not
//! `0.0000001`); a NaN or infinite value is `NaN` / `inf` in CSV and `null` in JSON (read back
//! as NaN). Every row ends with a newline, so a last line without one is a row cut short by a
//! crash: [`read_metrics`] ignores it and [`MetricsLog::resume`] drops it.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::checkpoint::write_atomically_locked;
use crate::console::escape_controls;
use crate::error::{Error, Result};
use crate::file_lock::{FileLock, LockError};

/// The columns every metrics file starts with, in this order.
pub const BASE_COLUMNS: [&str; 4] = ["step", "loss", "elapsed_s", "lr"];

/// The extra column for the loss on held-out data.
pub const VAL_LOSS: &str = "val_loss";

/// How a metrics file is written, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsFormat {
    /// `.csv`: a header line, then one line of comma-separated numbers per row.
    Csv,
    /// `.jsonl`: one JSON object per line, no header.
    Jsonl,
}

impl MetricsFormat {
    /// The format for `path`'s extension (`.csv` or `.jsonl`, in any case).
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extension.eq_ignore_ascii_case("csv") {
            Ok(Self::Csv)
        } else if extension.eq_ignore_ascii_case("jsonl") {
            Ok(Self::Jsonl)
        } else {
            Err(metrics_error(
                path,
                "unknown format; use a .csv or .jsonl file name",
            ))
        }
    }
}

/// One logged training step.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRow {
    /// The step just completed (1-based, as in the training report).
    pub step: u64,
    /// The training loss of that step.
    pub loss: f32,
    /// Seconds since this process started training.
    pub elapsed_s: f64,
    /// The learning rate of that step.
    pub lr: f32,
    /// Values of the extra columns this row has, in column order; a column without a value is
    /// left out.
    pub extra: Vec<(String, f64)>,
}

impl MetricsRow {
    /// The value of extra column `column`, when this row has one.
    pub fn get(&self, column: &str) -> Option<f64> {
        self.extra
            .iter()
            .find(|(name, _)| name == column)
            .map(|&(_, value)| value)
    }
}

/// A metrics file open for appending rows.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    format: MetricsFormat,
    extra: Vec<String>,
    /// Open at its end, holding the file's lock for the run.
    file: File,
    last_step: Option<u64>,
}

/// Locks the metrics file at `path` for this run, or says who holds it. A destination that
/// cannot be written (a missing directory, a read-only one) is reported as for a checkpoint's
/// (the same message and exit code as `--out`'s).
fn lock(path: &Path) -> Result<FileLock> {
    FileLock::acquire(path).map_err(|problem| match problem {
        LockError::Busy(_) => metrics_error(
            path,
            format!("{problem}; wait for it to finish, or log to another file"),
        ),
        LockError::Io(_) => match crate::checkpoint::check_destination(path, true) {
            Err(error @ Error::CheckpointWrite { .. }) => error,
            _ => Error::CheckpointWrite {
                path: path.to_owned(),
                message: problem.to_string(),
            },
        },
    })
}

impl MetricsLog {
    /// Starts the metrics file of a fresh run at `path`, with the extra columns `extra` (e.g.
    /// `&[VAL_LOSS]`) after the base ones.
    ///
    /// A file that exists and is not empty holds another run's history: it is refused unless
    /// `force`, and then replaced atomically (by the header alone), so it is never left half
    /// overwritten. `force` also replaces a write-protected file, as for checkpoints.
    pub fn create(path: &Path, extra: &[&str], force: bool) -> Result<Self> {
        let format = MetricsFormat::from_path(path)?;
        let extra = check_columns(path, extra)?;
        if fs::metadata(path).is_ok_and(|meta| !meta.is_file()) {
            return Err(not_regular(path));
        }
        let lock = lock(path)?;
        Self::start(path, format, extra, lock, force)
    }

    /// A fresh log in the locked file at `path`.
    fn start(
        path: &Path,
        format: MetricsFormat,
        extra: Vec<String>,
        lock: FileLock,
        force: bool,
    ) -> Result<Self> {
        let len = lock
            .file
            .metadata()
            .map_err(|e| write_error(path, &e))?
            .len();
        if len > 0 && !force {
            return Err(metrics_error(
                path,
                match read_metrics(path) {
                    Ok(_) => "already holds the metrics of another run; pass --force to replace it, or resume that run".to_string(),
                    Err(Error::Metrics { message, .. }) => format!(
                        "exists and is not a metrics file ({message}); name another file, or pass --force to replace it"
                    ),
                    Err(other) => format!(
                        "exists and cannot be read as a metrics file ({other}); name another file, or pass --force to replace it"
                    ),
                },
            ));
        }
        let file = write_atomically_locked(path, header(format, &extra).as_bytes(), force)?;
        // The old file's lock goes with it; the new one was locked before it took the name.
        drop(lock);
        Ok(Self::open(path, format, extra, None, file))
    }

    /// Continues the metrics file of a run resumed from its checkpoint at step `resume_step`.
    ///
    /// The file must have been written with the same format and extra columns (in JSON Lines,
    /// which has no header, no key outside them). Its rows after `resume_step` were logged by
    /// the earlier run after its last checkpoint and will be logged again, so they are dropped:
    /// the kept rows are rewritten atomically (a temporary file renamed over it), and after the
    /// resumed run the file holds each step once, in order. A missing or empty file is started
    /// as by [`MetricsLog::create`].
    pub fn resume(path: &Path, extra: &[&str], resume_step: u64) -> Result<Self> {
        let format = MetricsFormat::from_path(path)?;
        let columns = check_columns(path, extra)?;
        if fs::metadata(path).is_ok_and(|meta| !meta.is_file()) {
            return Err(not_regular(path));
        }
        let lock = lock(path)?;
        if lock.file.metadata().is_ok_and(|m| m.len() == 0) {
            return Self::start(path, format, columns, lock, false);
        }
        let text = read_text(path)?;
        let parsed = parse(path, &text, format)?;
        let matches = match format {
            MetricsFormat::Csv => parsed.extra == columns,
            MetricsFormat::Jsonl => parsed.extra.iter().all(|c| columns.contains(c)),
        };
        if !matches {
            return Err(metrics_error(
                path,
                format!(
                    "its columns ({}) are not this run's ({}); resume with the same settings, or log to a new file",
                    column_list(&parsed.extra),
                    column_list(&columns)
                ),
            ));
        }
        let kept = parsed
            .rows
            .iter()
            .take_while(|(row, _)| row.step <= resume_step)
            .count();
        let (cut, last_step) = match kept.checked_sub(1).map(|i| &parsed.rows[i]) {
            Some((row, end)) => (*end, Some(row.step)),
            None => (parsed.header_end, None),
        };
        let mut prefix = text[..cut].to_owned();
        if !prefix.is_empty() && !prefix.ends_with('\n') {
            prefix.push('\n');
        }
        let file = if prefix != text {
            let file = write_atomically_locked(path, prefix.as_bytes(), false)?;
            drop(lock);
            file
        } else if lock.writable {
            lock.file
        } else {
            return Err(write_error(
                path,
                &io::Error::from(io::ErrorKind::PermissionDenied),
            ));
        };
        Ok(Self::open(path, format, columns, last_step, file))
    }

    fn open(
        path: &Path,
        format: MetricsFormat,
        extra: Vec<String>,
        last_step: Option<u64>,
        file: File,
    ) -> Self {
        Self {
            path: path.to_owned(),
            format,
            extra,
            file,
            last_step,
        }
    }

    /// Appends one row and hands it to the operating system at once (no fsync: a killed
    /// process keeps every row written; a power cut may lose the last few).
    ///
    /// Refused, with nothing written, when the step does not follow the last one or the row
    /// has a value for a column this log does not have. An I/O error is
    /// [`Error::CheckpointWrite`]; the rows before are kept.
    pub fn append(&mut self, row: &MetricsRow) -> Result<()> {
        if let Some(last) = self.last_step
            && row.step <= last
        {
            return Err(metrics_error(
                &self.path,
                format!(
                    "step {} logged after step {last}: steps must increase",
                    row.step
                ),
            ));
        }
        let line = self.format_row(row)?;
        // One write per row: a reader never sees half a line unless the disk fills up.
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| write_error(&self.path, &e))?;
        self.last_step = Some(row.step);
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's format.
    pub fn format(&self) -> MetricsFormat {
        self.format
    }

    /// The extra columns, in order.
    pub fn extra_columns(&self) -> &[String] {
        &self.extra
    }

    /// The row as one line of this log's format, newline included.
    fn format_row(&self, row: &MetricsRow) -> Result<String> {
        let mut cells: Vec<Option<f64>> = vec![None; self.extra.len()];
        for (name, value) in &row.extra {
            let slot = self
                .extra
                .iter()
                .position(|c| c == name)
                .and_then(|i| cells.get_mut(i))
                .filter(|slot| slot.is_none())
                .ok_or_else(|| {
                    metrics_error(
                        &self.path,
                        format!(
                            "the row of step {} has a value for `{}`, which is not one of this log's extra columns ({}) or is given twice",
                            row.step,
                            escape_controls(name),
                            column_list(&self.extra)
                        ),
                    )
                })?;
            *slot = Some(*value);
        }
        Ok(match self.format {
            MetricsFormat::Csv => {
                let mut line = format!(
                    "{},{:?},{:.6},{:?}",
                    row.step, row.loss, row.elapsed_s, row.lr
                );
                for cell in cells {
                    line.push(',');
                    if let Some(value) = cell {
                        line.push_str(&format!("{value:?}"));
                    }
                }
                line + "\n"
            }
            MetricsFormat::Jsonl => {
                let mut line = format!(
                    "{{\"step\":{},\"loss\":{},\"elapsed_s\":{},\"lr\":{}",
                    row.step,
                    json_number(row.loss),
                    if row.elapsed_s.is_finite() {
                        format!("{:.6}", row.elapsed_s)
                    } else {
                        "null".into()
                    },
                    json_number(row.lr)
                );
                for (name, cell) in self.extra.iter().zip(cells) {
                    if let Some(value) = cell {
                        line.push_str(&format!(",\"{name}\":{}", json_number(value)));
                    }
                }
                line + "}\n"
            }
        })
    }
}

/// Reads a metrics file of either format, by its extension.
///
/// Refused, with the line at fault: an empty file, one that is not a burnfit metrics file (a
/// CSV header that does not start with [`BASE_COLUMNS`], a JSON line without one of them), a
/// value that is not a number, and steps that do not increase. A last line without a newline is
/// a row cut short and is ignored. A CSV file with a header and no rows gives no rows.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let format = MetricsFormat::from_path(path)?;
    let text = read_text(path)?;
    Ok(parse(path, &text, format)?
        .rows
        .into_iter()
        .map(|(row, _)| row)
        .collect())
}

/// A parsed file: its extra columns, its rows with the offset just past each row's line, and
/// the offset just past the header.
struct Parsed {
    extra: Vec<String>,
    rows: Vec<(MetricsRow, usize)>,
    header_end: usize,
}

/// One line of a file, without its line ending.
struct Line<'a> {
    number: usize,
    text: &'a str,
    end: usize,
    terminated: bool,
}

fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let mut start = 0;
    let mut number = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        number += 1;
        let (content, end, terminated) = match text[start..].find('\n') {
            Some(i) => (&text[start..start + i], start + i + 1, true),
            None => (&text[start..], text.len(), false),
        };
        start = end;
        Some(Line {
            number,
            text: content.strip_suffix('\r').unwrap_or(content),
            end,
            terminated,
        })
    })
}

fn parse(path: &Path, text: &str, format: MetricsFormat) -> Result<Parsed> {
    if text.trim().is_empty() {
        return Err(metrics_error(path, "is empty"));
    }
    let mut lines = lines(text);
    let (extra, header_end) = match format {
        MetricsFormat::Csv => {
            let Some(header) = lines.next() else {
                return Err(metrics_error(path, "is empty"));
            };
            (
                csv_header(header.text).map_err(|m| line_error(path, 1, m))?,
                header.end,
            )
        }
        MetricsFormat::Jsonl => (Vec::new(), 0),
    };
    let mut parsed = Parsed {
        extra,
        rows: Vec::new(),
        header_end,
    };
    for line in lines {
        if line.text.trim().is_empty() {
            continue;
        }
        if !line.terminated {
            break;
        }
        let row = match format {
            MetricsFormat::Csv => csv_row(line.text, &parsed.extra),
            MetricsFormat::Jsonl => jsonl_row(line.text, &mut parsed.extra),
        }
        .map_err(|m| line_error(path, line.number, m))?;
        if let Some((last, _)) = parsed.rows.last()
            && row.step <= last.step
        {
            return Err(line_error(
                path,
                line.number,
                format!(
                    "step {} after step {}: steps must increase",
                    row.step, last.step
                ),
            ));
        }
        parsed.rows.push((row, line.end));
    }
    Ok(parsed)
}

/// The extra columns named by a CSV header.
fn csv_header(line: &str) -> std::result::Result<Vec<String>, String> {
    let names: Vec<&str> = line.split(',').map(str::trim).collect();
    if names.len() < BASE_COLUMNS.len() || names[..BASE_COLUMNS.len()] != BASE_COLUMNS {
        return Err(format!(
            "not a burnfit metrics file: the header must start with {} (found `{}`)",
            BASE_COLUMNS.join(","),
            shorten(line)
        ));
    }
    let extra: Vec<&str> = names[BASE_COLUMNS.len()..].to_vec();
    for (i, name) in extra.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("column {} has no name", BASE_COLUMNS.len() + i + 1));
        }
        if BASE_COLUMNS.contains(name) || extra[..i].contains(name) {
            return Err(format!("column `{}` appears twice", shorten(name)));
        }
    }
    Ok(extra.into_iter().map(String::from).collect())
}

fn csv_row(line: &str, extra: &[String]) -> std::result::Result<MetricsRow, String> {
    let cells: Vec<&str> = line.split(',').map(str::trim).collect();
    let expected = BASE_COLUMNS.len() + extra.len();
    if cells.len() != expected {
        return Err(format!(
            "{} cells, but the header names {expected} columns",
            cells.len()
        ));
    }
    let mut row = MetricsRow {
        step: number("step", cells[0])?,
        loss: number("loss", cells[1])?,
        elapsed_s: number("elapsed_s", cells[2])?,
        lr: number("lr", cells[3])?,
        extra: Vec::new(),
    };
    for (name, cell) in extra.iter().zip(&cells[BASE_COLUMNS.len()..]) {
        if !cell.is_empty() {
            row.extra.push((name.clone(), number(name, cell)?));
        }
    }
    Ok(row)
}

fn number<T: std::str::FromStr>(column: &str, cell: &str) -> std::result::Result<T, String> {
    cell.parse().map_err(|_| {
        let what = if column == "step" {
            "a whole number"
        } else {
            "a number"
        };
        format!("`{column}` is `{}`, not {what}", shorten(cell))
    })
}

/// A JSON Lines row; extra keys not seen before are added to `columns`.
fn jsonl_row(line: &str, columns: &mut Vec<String>) -> std::result::Result<MetricsRow, String> {
    let OrderedObject(entries) =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let mut base: [Option<&Value>; 4] = [None; 4];
    let mut extra = Vec::new();
    for (key, value) in &entries {
        let duplicate = match BASE_COLUMNS.iter().position(|c| c == key) {
            Some(i) => base[i].replace(value).is_some(),
            None => {
                let duplicate = extra.iter().any(|(k, _): &(String, f64)| k == key);
                extra.push((key.clone(), json_value(key, value)?));
                duplicate
            }
        };
        if duplicate {
            return Err(format!("`{}` appears twice", shorten(key)));
        }
    }
    let [step, loss, elapsed_s, lr] = base;
    let missing = |name: &str| format!("not a burnfit metrics row: it has no `{name}`");
    let step = step.ok_or_else(|| missing("step"))?;
    let step = step.as_u64().ok_or_else(|| {
        format!(
            "`step` is `{}`, not a whole number",
            shorten(&step.to_string())
        )
    })?;
    let row = MetricsRow {
        step,
        loss: json_value("loss", loss.ok_or_else(|| missing("loss"))?)? as f32,
        elapsed_s: json_value("elapsed_s", elapsed_s.ok_or_else(|| missing("elapsed_s"))?)?,
        lr: json_value("lr", lr.ok_or_else(|| missing("lr"))?)? as f32,
        extra,
    };
    for (key, _) in &row.extra {
        if !columns.contains(key) {
            columns.push(key.clone());
        }
    }
    Ok(row)
}

/// A JSON number, or NaN for `null` (how a non-finite value is written).
fn json_value(key: &str, value: &Value) -> std::result::Result<f64, String> {
    match value {
        Value::Null => Ok(f64::NAN),
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("`{key}` is out of range")),
        other => Err(format!(
            "`{}` is `{}`, not a number",
            shorten(key),
            shorten(&other.to_string())
        )),
    }
}

/// The shortest round-trip form of a finite number, which is valid JSON (`1e-7`, `0.5`,
/// `3.0`), or `null`.
fn json_number<T: fmt::Debug + Into<f64> + Copy>(value: T) -> String {
    if value.into().is_finite() {
        format!("{value:?}")
    } else {
        "null".into()
    }
}

/// A JSON object's entries in file order (serde_json's map sorts them).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedObject, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedObject(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// The header of a new file: CSV's column line, or nothing for JSON Lines.
fn header(format: MetricsFormat, extra: &[String]) -> String {
    match format {
        MetricsFormat::Csv => {
            let mut names: Vec<&str> = BASE_COLUMNS.to_vec();
            names.extend(extra.iter().map(String::as_str));
            names.join(",") + "\n"
        }
        MetricsFormat::Jsonl => String::new(),
    }
}

/// Extra column names must be plain identifiers (nothing to quote in CSV or JSON), distinct
/// from each other and from the base columns.
fn check_columns(path: &Path, extra: &[&str]) -> Result<Vec<String>> {
    for (i, name) in extra.iter().enumerate() {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(metrics_error(
                path,
                format!("column name `{}`: use letters, digits and _", shorten(name)),
            ));
        }
        if BASE_COLUMNS.contains(name) || extra[..i].contains(name) {
            return Err(metrics_error(
                path,
                format!("column `{name}` is given twice"),
            ));
        }
    }
    Ok(extra.iter().map(|&name| name.to_owned()).collect())
}

fn column_list(extra: &[String]) -> String {
    let mut names: Vec<&str> = BASE_COLUMNS.to_vec();
    names.extend(extra.iter().map(String::as_str));
    names.join(",")
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| metrics_error(path, format!("cannot read it: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| metrics_error(path, "not a burnfit metrics file: it is not UTF-8 text"))
}

/// At most 40 characters of `text`, control characters escaped: for quoting file content in a
/// one-line message.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    escape_controls(&short)
}

fn not_regular(path: &Path) -> Error {
    metrics_error(
        path,
        "is not a regular file (a metrics log is appended to, and rewritten on resume)",
    )
}

fn metrics_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Metrics {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn line_error(path: &Path, line: usize, message: String) -> Error {
    metrics_error(path, format!("line {line}: {message}"))
}

fn write_error(path: &Path, error: &io::Error) -> Error {
    Error::CheckpointWrite {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// A resumed run appends to a metrics file only if the file is its checkpoint's history: the
/// last row at or before the checkpoint's `step` holds the checkpoint's `last_loss`, bit for bit.
/// A missing, empty or unreadable file passes (the log reports its own problems), as does a
/// checkpoint that records no loss.
pub fn check_continues(path: &Path, step: u64, last_loss: Option<f32>) -> Result<()> {
    let Some(last_loss) = last_loss else {
        return Ok(());
    };
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    let Ok(rows) = read_metrics(path) else {
        return Ok(());
    };
    let message = match rows.iter().rev().find(|r| r.step <= step) {
        Some(row) if row.loss.to_bits() == last_loss.to_bits() => return Ok(()),
        Some(row) => format!(
            "is not this checkpoint's history: its row at step {} has loss {}, the checkpoint's last loss is {last_loss}",
            row.step, row.loss
        ),
        None if rows.is_empty() => return Ok(()),
        None => format!(
            "is not this checkpoint's history: it starts at step {}, after the checkpoint's step {step}",
            rows[0].step
        ),
    };
    Err(Error::Metrics {
        path: path.to_owned(),
        message: format!(
            "{message}; use another file, or --force to cut it at step {step} and append"
        ),
    })
}

#[cfg(test)]
mod tests;
