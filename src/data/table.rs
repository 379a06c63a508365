//! A CSV file of numbers as a table: one target column and the feature columns, as f64.
//!
//! The whole file is read into memory once and parsed in place (`csv`'s `ByteRecord`: no
//! allocation per row), and only the columns in use are parsed. Every error names the line
//! (the file's own line number: the header is line 1) and the column at fault.
//!
//! The rows are split into training and validation rows by [`holdout_split`], visited in a
//! fresh order each epoch by [`epoch_permutation`], and standardized by [`Scaling`].
//!
//! [`Survey::of`] is the reader's first pass on its own (the header checked, the file hashed,
//! its lines counted): enough to decide whether the table fits in memory, and whether an
//! out-of-core cache of it ([`crate::data::cache`]) is current.

pub mod chunk;
pub mod epoch_orders;
pub mod gather;
pub mod host_batches;
pub mod parquet_file;
pub mod scaling;
pub mod split;
pub mod stream;

use std::io::Read;
use std::path::Path;

pub(crate) use crate::error::bytes_text;
use crate::error::{Error, Result};
pub use epoch_orders::EpochOrders;
pub use gather::GatherRows;
pub use host_batches::HostBatches;
pub use scaling::{Moments, Scaling};
pub use split::{
    Holdout, block_order, epoch_permutation, holdout_mask, holdout_split, window_permutation,
};

/// The most columns a header may have (a file wider than this is not a table of features).
pub const MAX_COLUMNS: usize = 65_536;

/// The longest header read, in bytes: 65,536 names of up to 255 bytes each fit.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// How to read a data file.
#[derive(Clone, Debug, PartialEq)]
pub struct TableOptions {
    /// The column to predict.
    pub target: String,
    /// The feature columns, in the model's order; `None`: every column but the target, in file
    /// order.
    pub features: Option<Vec<String>>,
    /// The field separator, e.g. `b','` or `b'\t'`.
    pub delimiter: u8,
    /// Skip (and count) rows with an empty, non-numeric or non-finite cell in a column in use,
    /// instead of failing on the first one.
    pub drop_invalid_rows: bool,
}

impl TableOptions {
    /// Comma-separated, every other column a feature, invalid rows an error.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            features: None,
            delimiter: b',',
            drop_invalid_rows: false,
        }
    }
}

/// The numbers of a data file: `x` (rows × d, row-major) and `y` (rows).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The path as given, for messages and metadata.
    pub file_name: String,
    /// Every column of the header, in file order.
    pub columns: Vec<String>,
    /// The feature columns, in the order of `x`'s columns.
    pub feature_names: Vec<String>,
    /// The target column.
    pub target_name: String,
    /// The features, row-major: row `i` is `x[i * d..(i + 1) * d]`.
    pub x: Vec<f64>,
    /// The target of each row.
    pub y: Vec<f64>,
    /// Rows skipped because of an invalid cell (only with `drop_invalid_rows`).
    pub dropped_rows: usize,
    /// [`content_hash`] of the file's bytes: tells whether a file changed, see there.
    pub content_hash: u64,
    /// The file's size in bytes.
    pub bytes: u64,
}

impl Table {
    /// Reads and checks the data file at `path`, streaming: the header is checked first, then
    /// one pass hashes the file and counts its lines (an upper bound on its rows), the table's
    /// memory is checked against what the system has available, and a second pass parses the
    /// rows into arrays allocated once. The text is never held whole: memory is the table's
    /// numbers (8 bytes per cell in use) plus buffers of a few MB. A Parquet file
    /// ([`parquet_file::is_parquet`]) is read by [`parquet_file`] instead.
    pub fn read(path: &Path, options: &TableOptions) -> Result<Table> {
        if parquet_file::is_parquet(path) {
            return parquet_file::read_table(path, options);
        }
        Self::read_surveyed(path, options, &Survey::of(path, options)?)
    }

    /// [`Table::read`]'s second pass for a CSV file, after its first ([`Survey::of`]) has been
    /// made.
    pub fn read_surveyed(path: &Path, options: &TableOptions, survey: &Survey) -> Result<Table> {
        let fail = |message: String| Error::Data {
            path: path.to_path_buf(),
            message,
        };
        let file = open_regular(path).map_err(fail)?;
        let at = |offset: u64| ReadAt {
            file: &file,
            offset,
        };
        Self::parse_source(
            path,
            options,
            Source {
                open: at,
                start: survey.start,
                rows_bound: survey.rows_bound,
                content_hash: survey.content_hash,
                bytes: survey.bytes,
            },
        )
    }

    /// The table in `bytes`, the contents of the file `path`.
    #[cfg(test)]
    fn parse(bytes: &[u8], path: &Path, options: &TableOptions) -> Result<Table> {
        let fail = |message: String| Error::Data {
            path: path.to_path_buf(),
            message,
        };
        let start = text_start(bytes)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail("the file is empty".into()))?;
        Self::parse_source(
            path,
            options,
            Source {
                open: |offset: u64| &bytes[offset as usize..],
                start,
                rows_bound: line_ends(bytes, false),
                content_hash: content_hash(bytes),
                bytes: bytes.len() as u64,
            },
        )
    }

    /// Parses the rows of `source`, whose header is checked again here (the same checks).
    fn parse_source<R: Read>(
        path: &Path,
        options: &TableOptions,
        source: Source<impl Fn(u64) -> R>,
    ) -> Result<Table> {
        let fail = |message: String| Error::Data {
            path: path.to_path_buf(),
            message,
        };
        let CsvText {
            mut reader,
            columns,
        } = CsvText::open((source.open)(source.start), options.delimiter).map_err(fail)?;
        let layout = Layout::new(&columns, options).map_err(fail)?;
        let d = layout.feature_names.len();
        let rows_bound = usize::try_from(source.rows_bound).unwrap_or(usize::MAX);
        let needed = memory_needed(source.rows_bound, d);
        if let Some(available) = crate::memory::available()
            && needed > available
        {
            return Err(fail(format!(
                "its table needs {} (up to {rows_bound} rows × {} columns as f64, and a working copy), more than the {} of memory available",
                bytes_text(needed),
                d + 1,
                bytes_text(available)
            )));
        }
        // Allocated once: a quoted field spanning lines or blank lines only lower the rows.
        let mut x = Vec::with_capacity(rows_bound.saturating_mul(d));
        let mut y = Vec::with_capacity(rows_bound);
        let mut dropped_rows = 0;
        let mut first_invalid = None;
        let mut record = csv::ByteRecord::new();
        let mut row = vec![0.0; d + 1];
        let mut last_record = None;
        for records in 0u64.. {
            // A stop signal ends the read (every 2^16 rows: a few ms).
            if records % (1 << 16) == 0 {
                crate::signals::stop_reading(path)?;
            }
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(fail(e.to_string())),
            }
            let line = || line_at(&record, |byte| (source.open)(source.start + byte));
            last_record = record.position().map(|p| (p.byte(), p.line()));
            if record.len() != columns.len() {
                return Err(fail(ragged(line(), record.len(), columns.len())));
            }
            match layout.parse_row(&record, &mut row) {
                Ok(()) => {
                    x.extend_from_slice(&row[..d]);
                    y.push(row[d]);
                }
                Err((column, problem)) => {
                    let message =
                        format!("line {}, column `{}`: {problem}", line(), columns[column]);
                    if !options.drop_invalid_rows {
                        return Err(fail(format!(
                            "{message} (use --drop-invalid-rows to skip such rows)"
                        )));
                    }
                    dropped_rows += 1;
                    first_invalid.get_or_insert(message);
                }
            }
        }
        // The csv reader ends a quoted field left open at the end of the file, silently.
        if let Some((byte, line)) = last_record {
            let mut tail = Vec::new();
            (source.open)(source.start + byte)
                .read_to_end(&mut tail)
                .map_err(|e| fail(e.to_string()))?;
            if let Some(opened) = stream::open_quote_line(&tail, options.delimiter) {
                return Err(fail(stream::never_closed(line + opened - 1)));
            }
        }
        if y.is_empty() {
            return Err(fail(match first_invalid {
                None => "no data rows after the header".into(),
                Some(first) => format!(
                    "all {dropped_rows} data rows have an invalid cell, so none is left (the first: {first})"
                ),
            }));
        }
        // Many dropped rows leave much unused room: give it back (a copy, but of the kept rows).
        if y.len() < y.capacity() / 2 {
            x.shrink_to_fit();
            y.shrink_to_fit();
        }
        Ok(Table {
            file_name: path.display().to_string(),
            columns,
            feature_names: layout.feature_names,
            target_name: options.target.clone(),
            x,
            y,
            dropped_rows,
            content_hash: source.content_hash,
            bytes: source.bytes,
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// The number of features.
    pub fn d(&self) -> usize {
        self.feature_names.len()
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.d();
        &self.x[i * d..(i + 1) * d]
    }
}

/// What [`Table::read`]'s first pass learns of a file: where its text starts, the header's
/// columns, a bound on its rows, its content hash and size. Enough to tell whether its table
/// fits in memory ([`Survey::fits_in_memory`]) and whether a cache of it is current.
#[derive(Clone, Debug, PartialEq)]
pub struct Survey {
    /// Where the text starts (after a UTF-8 byte-order mark).
    pub start: u64,
    /// Every column of the header, in file order.
    pub columns: Vec<String>,
    /// The feature columns the options pick, in the model's order.
    pub feature_names: Vec<String>,
    /// At least the number of data rows: the file's line ends.
    pub rows_bound: u64,
    /// [`content_hash`] of the file's bytes.
    pub content_hash: u64,
    /// The file's size in bytes.
    pub bytes: u64,
}

impl Survey {
    /// Checks the header of the file at `path` against `options` (a wrong column name costs no
    /// pass over the file), then hashes the file and counts its lines in one pass of 1 MiB
    /// blocks.
    pub fn of(path: &Path, options: &TableOptions) -> Result<Survey> {
        let fail = |message: String| Error::Data {
            path: path.to_path_buf(),
            message,
        };
        let file = open_regular(path).map_err(fail)?;
        let at = |offset: u64| ReadAt {
            file: &file,
            offset,
        };
        let start = text_start(at(0)).map_err(|e| fail(e.to_string()))?;
        let start = start.ok_or_else(|| fail("the file is empty".into()))?;
        let header =
            CsvText::open(at(start).take(MAX_HEADER_BYTES), options.delimiter).map_err(fail)?;
        if header.reader.position().byte() >= MAX_HEADER_BYTES {
            return Err(fail(format!(
                "line 1: the header is longer than {} MiB (a quote left open?)",
                MAX_HEADER_BYTES >> 20
            )));
        }
        let columns = header.columns;
        let layout = Layout::new(&columns, options).map_err(fail)?;
        let mut hasher = Xxh64::new(0);
        let mut newlines = 0u64;
        let mut previous_cr = false;
        let mut bytes = 0u64;
        let mut block = vec![0u8; 1 << 20];
        let mut reader = at(0);
        loop {
            crate::signals::stop_reading(path)?;
            let n = match reader.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(e.to_string())),
            };
            hasher.update(&block[..n]);
            // Line ends: `\n`, and `\r` alone (old Mac files); `\r\n` counts once.
            newlines += line_ends(&block[..n], previous_cr);
            previous_cr = block[n - 1] == b'\r';
            bytes += n as u64;
        }
        Ok(Survey {
            start,
            columns,
            feature_names: layout.feature_names,
            rows_bound: newlines,
            content_hash: hasher.finish(),
            bytes,
        })
    }

    /// The memory [`Table::read`] would need for this file.
    pub fn memory_needed(&self) -> u64 {
        memory_needed(self.rows_bound, self.feature_names.len())
    }

    /// Whether [`Table::read`] would find room for the table: the check it makes before
    /// allocating (true when the system's free memory is unknown).
    pub fn fits_in_memory(&self) -> bool {
        crate::memory::available().is_none_or(|available| self.memory_needed() <= available)
    }
}

/// The memory a table of up to `rows` rows of `d` features takes in [`Table::read`]: the table,
/// and room for one working copy of it (the training split, a design matrix), as f64.
fn memory_needed(rows: u64, d: usize) -> u64 {
    rows.saturating_mul(d as u64 + 1).saturating_mul(16)
}

/// The line ends in `bytes`: every `\n`, and every `\r` not followed by one (the byte after
/// the block is not known: a `\r` ending it counts, and `previous_cr` says whether the block
/// before ended in one, whose `\n` here is then not counted again).
fn line_ends(bytes: &[u8], previous_cr: bool) -> u64 {
    let mut count = 0;
    let mut cr = previous_cr;
    for &b in bytes {
        match b {
            b'\n' if cr => {}
            b'\n' | b'\r' => count += 1,
            _ => {}
        }
        cr = b == b'\r';
    }
    count
}

/// Where a table's bytes come from: readers from any offset, and what one pass learned.
struct Source<F> {
    /// A reader from this byte offset of the file.
    open: F,
    /// Where the text starts (after a UTF-8 byte-order mark).
    start: u64,
    /// At least the number of data rows: the file's newlines.
    rows_bound: u64,
    content_hash: u64,
    bytes: u64,
}

/// A reader of a file from an offset, by positioned reads (`pread`): several can read one file
/// at once, each from its own place.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Opens a regular file for reading: a directory, device, FIFO or socket is refused (`/dev/zero`
/// never ends and a FIFO may never be written to).
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO would otherwise wait for a writer (forever).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory, not a file".into());
    }
    if !meta.is_file() {
        return Err("is not a regular file (a device, FIFO or socket)".into());
    }
    Ok(file)
}

/// Where the text of a file starts (past a UTF-8 byte-order mark), or `None` when it holds
/// nothing but ASCII whitespace. Reads only up to the first other byte.
fn text_start(mut reader: impl Read) -> std::io::Result<Option<u64>> {
    let mut block = [0u8; 4096];
    let mut offset = 0u64;
    let mut start = 0u64;
    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut bytes = &block[..n];
        if offset == 0 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes = &bytes[3..];
            start = 3;
        }
        if bytes.iter().any(|b| !b.is_ascii_whitespace()) {
            return Ok(Some(start));
        }
        offset += n as u64;
    }
}

/// A CSV file's text after its header: the reader positioned at the first data row, and the
/// column names. Shared by [`Table::read`] and `predict --data`, so both read a file alike.
pub(crate) struct CsvText<R> {
    /// The reader, past the header; `flexible`, so ragged rows reach the caller's check.
    pub reader: csv::Reader<R>,
    /// The header's names, ASCII whitespace trimmed.
    pub columns: Vec<String>,
}

impl<R: Read> CsvText<R> {
    /// Checks the delimiter and reads a header of at most [`MAX_COLUMNS`] UTF-8 names, none a
    /// number, none repeated, from `text` (a file's bytes past any byte-order mark).
    pub(crate) fn open(text: R, delimiter: u8) -> Result<CsvText<R>, String> {
        if matches!(delimiter, b'"' | b'\n' | b'\r') {
            return Err(format!("the delimiter cannot be {:?}", delimiter as char));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(text);
        let header = reader.byte_headers().map_err(|e| format!("line 1: {e}"))?;
        if header.len() > MAX_COLUMNS {
            return Err(format!(
                "line 1: the header has {} columns, more than the {MAX_COLUMNS} burnfit reads (is the delimiter right?)",
                header.len()
            ));
        }
        if let Some(column) = header
            .iter()
            .position(|name| std::str::from_utf8(name).is_err())
        {
            return Err(format!(
                "line 1, column {}: the header is not UTF-8 text (is this a CSV file?)",
                column + 1
            ));
        }
        let columns: Vec<String> = header
            .iter()
            .map(|name| String::from_utf8_lossy(name.trim_ascii()).into_owned())
            .collect();
        if columns.iter().all(|c| c.parse::<f64>().is_ok()) {
            return Err("the first line has no column names (a header row is required)".into());
        }
        let mut seen = std::collections::HashMap::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(j) = seen.insert(name.as_str(), i) {
                return Err(format!(
                    "column `{name}` appears twice in the header (columns {} and {})",
                    j + 1,
                    i + 1
                ));
            }
        }
        Ok(CsvText { reader, columns })
    }
}

/// The message for a row with another number of fields than the header.
pub(crate) fn ragged(line: u64, fields: usize, columns: usize) -> String {
    let s = if fields == 1 { "" } else { "s" };
    format!("line {line} has {fields} field{s}, but the header has {columns} columns")
}

/// The line of `text` on which `record` starts (1-based).
pub(crate) fn line_of(text: &[u8], record: &csv::ByteRecord) -> u64 {
    line_at(record, |byte| &text[byte as usize..])
}

/// The line on which `record` starts (1-based), with `rest(byte)` reading the text from a byte
/// offset. csv's own position is where the reader stood before the record, i.e. before any
/// blank lines it skipped: those are counted here (only for a message: it reads a few bytes).
fn line_at<R: Read>(record: &csv::ByteRecord, rest: impl Fn(u64) -> R) -> u64 {
    let Some(position) = record.position() else {
        return 0;
    };
    let mut skipped = 0;
    for byte in std::io::BufReader::new(rest(position.byte())).bytes() {
        match byte {
            Ok(b'\n') => skipped += 1,
            Ok(b'\r') => {}
            _ => break,
        }
    }
    position.line() + skipped
}

/// Which file column goes where: checked against the header once, then used for every row.
struct Layout {
    feature_names: Vec<String>,
    /// Per file column: its slot in a parsed row (features `0..d`, the target `d`), or `None`
    /// when unused.
    slots: Vec<Option<usize>>,
}

impl Layout {
    fn new(columns: &[String], options: &TableOptions) -> Result<Layout, String> {
        let find = |name: &str, role: &str| {
            columns.iter().position(|c| c == name).ok_or_else(|| {
                format!(
                    "no column `{name}` for the {role}; the columns are {}{}",
                    list(columns),
                    crate::data::delimiter_hint::one_column_hint(
                        columns,
                        Some(char::from(options.delimiter))
                    )
                )
            })
        };
        let target = find(&options.target, "target")?;
        let features = match &options.features {
            Some(names) => {
                let mut features = Vec::with_capacity(names.len());
                for name in names {
                    if *name == options.target {
                        return Err(format!(
                            "`{name}` is the target; it cannot also be a feature"
                        ));
                    }
                    let column = find(name, "feature")?;
                    if features.contains(&column) {
                        return Err(format!("feature `{name}` is listed twice"));
                    }
                    features.push(column);
                }
                features
            }
            None => {
                if let Some(i) = columns.iter().position(String::is_empty) {
                    return Err(format!(
                        "column {} has no name in the header; name it, or pick the features with --features",
                        i + 1
                    ));
                }
                (0..columns.len()).filter(|&c| c != target).collect()
            }
        };
        if features.is_empty() {
            return Err(format!(
                "no feature columns: the model needs at least one besides the target `{}`",
                options.target
            ));
        }
        let mut slots = vec![None; columns.len()];
        for (slot, &column) in features.iter().enumerate() {
            slots[column] = Some(slot);
        }
        slots[target] = Some(features.len());
        Ok(Layout {
            feature_names: features.iter().map(|&c| columns[c].clone()).collect(),
            slots,
        })
    }

    /// Parses the columns in use of `record` into `row` (features, then the target), or says
    /// which column holds what problem.
    fn parse_row(&self, record: &csv::ByteRecord, row: &mut [f64]) -> Result<(), (usize, String)> {
        for (column, (field, slot)) in record.iter().zip(&self.slots).enumerate() {
            if let Some(slot) = *slot {
                row[slot] = parse_number(field).map_err(|problem| (column, problem))?;
            }
        }
        Ok(())
    }
}

/// A cell as a finite f64: surrounding ASCII whitespace is ignored; the rest is Rust's f64
/// syntax (`1`, `-2.5`, `3e-4`), and `nan`, `inf` and overflowing values like `1e999` are refused.
pub(crate) fn parse_number(field: &[u8]) -> Result<f64, String> {
    let cell = field.trim_ascii();
    if cell.is_empty() {
        return Err("the cell is empty".into());
    }
    match std::str::from_utf8(cell)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        // Training and checkpoints are f32: a value beyond its range cannot be trained on.
        Some(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => Ok(v),
        Some(v) if v.is_finite() => Err(format!(
            "{} is out of f32 range (about ±3.4e38)",
            shown(cell)
        )),
        Some(_) => Err(format!("{} is not a finite number", shown(cell))),
        // A quote left open swallows the rest of the file into one cell.
        None if cell.contains(&b'\n') => Err(format!(
            "{} spans several lines: a quote (\") left open?",
            shown(cell)
        )),
        None => Err(format!("{} is not a number", shown(cell))),
    }
}

/// A cell for a message: quoted, at most 40 characters.
fn shown(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(cell);
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// Column names as `` `a`, `b`, `c` ``.
fn list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| match c.char_indices().nth(40) {
            Some((end, _)) => format!("`{}...`", &c[..end]),
            None => format!("`{c}`"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A 64-bit hash of a file's bytes, to tell whether a data file changed between runs (e.g. a
/// resumed run on different data). It is XXH64 with seed 0, fast (several GB/s) and
/// well-mixed, but not cryptographic: anyone can make two files with the same hash on purpose.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(bytes);
    hasher.finish()
}

/// `h` as 16 lowercase hex digits, the way burnfit shows and stores content hashes.
pub fn hash_hex(h: u64) -> String {
    format!("{h:016x}")
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 (Yann Collet's xxHash, 64-bit) over bytes given in pieces: four independent lanes
/// over 32-byte stripes, so the multiplies of one stripe overlap, then the lanes, the length
/// and the tail are folded in. A stripe split between two pieces waits in `pending`.
pub struct Xxh64 {
    seed: u64,
    lanes: [u64; 4],
    pending: [u8; 32],
    pending_len: usize,
    total: u64,
}

fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn round(acc: u64, w: u64) -> u64 {
    acc.wrapping_add(w.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

impl Xxh64 {
    /// An empty hash with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            lanes: [
                seed.wrapping_add(P1).wrapping_add(P2),
                seed.wrapping_add(P2),
                seed,
                seed.wrapping_sub(P1),
            ],
            pending: [0; 32],
            pending_len: 0,
            total: 0,
        }
    }

    fn stripe(&mut self, stripe: &[u8]) {
        for (lane, w) in self.lanes.iter_mut().zip(stripe.chunks_exact(8)) {
            *lane = round(*lane, word(w));
        }
    }

    /// Hashes `bytes` after those given before.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.pending_len > 0 {
            let take = (32 - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len < 32 {
                return;
            }
            let stripe = self.pending;
            self.stripe(&stripe);
            self.pending_len = 0;
        }
        let stripes = bytes.chunks_exact(32);
        let rest = stripes.remainder();
        for stripe in stripes {
            self.stripe(stripe);
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// The hash of every byte given.
    pub fn finish(&self) -> u64 {
        let merge = |h: u64, lane: u64| (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        let mut h = if self.total >= 32 {
            let [a, b, c, d] = self.lanes;
            let h = a
                .rotate_left(1)
                .wrapping_add(b.rotate_left(7))
                .wrapping_add(c.rotate_left(12))
                .wrapping_add(d.rotate_left(18));
            self.lanes.iter().fold(h, |h, &lane| merge(h, lane))
        } else {
            self.seed.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut rest = &self.pending[..self.pending_len];
        while rest.len() >= 8 {
            h = (h ^ round(0, word(rest)))
                .rotate_left(27)
                .wrapping_mul(P1)
                .wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            let w = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as u64;
            h = (h ^ w.wrapping_mul(P1))
                .rotate_left(23)
                .wrapping_mul(P2)
                .wrapping_add(P3);
            rest = &rest[4..];
        }
        for &b in rest {
            h = (h ^ (b as u64).wrapping_mul(P5))
                .rotate_left(11)
                .wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, options: &TableOptions) -> Result<Table> {
        Table::parse(text.as_bytes(), Path::new("t.csv"), options)
    }

    fn message(text: &str, options: &TableOptions) -> String {
        let err = read(text, options).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        err.to_string()
    }

    fn y() -> TableOptions {
        TableOptions::new("y")
    }

    #[test]
    fn table_columns_rows_and_features_in_file_order() {
        let table = read("a,y,b\n1,2,3\n4,5,6\n", &y()).unwrap();
        assert_eq!(table.columns, ["a", "y", "b"]);
        assert_eq!(table.feature_names, ["a", "b"]);
        assert_eq!(table.target_name, "y");
        assert_eq!((table.rows(), table.d()), (2, 2));
        assert_eq!(table.x, [1.0, 3.0, 4.0, 6.0]);
        assert_eq!(table.row(1), [4.0, 6.0]);
        assert_eq!(table.y, [2.0, 5.0]);
        assert_eq!(table.dropped_rows, 0);
        assert_eq!(table.bytes, 18);
        assert_eq!(table.content_hash, content_hash(b"a,y,b\n1,2,3\n4,5,6\n"));
    }

    #[test]
    fn table_features_pick_and_order_columns() {
        let options = TableOptions {
            features: Some(vec!["c".into(), "a".into()]),
            ..y()
        };
        let table = read("a,b,c,y\n1,2,3,4\n", &options).unwrap();
        assert_eq!(table.feature_names, ["c", "a"]);
        assert_eq!(table.x, [3.0, 1.0]);
        assert_eq!(table.y, [4.0]);
    }

    #[test]
    fn table_reads_bom_quotes_crlf_spaces_and_other_delimiters() {
        let text = "\u{feff}\"x 1\" ; y \r\n\" 1.5\";-2e3\r\n\r\n3;\"4\"\r\n";
        let options = TableOptions {
            delimiter: b';',
            ..y()
        };
        let table = read(text, &options).unwrap();
        assert_eq!(table.columns, ["x 1", "y"]);
        assert_eq!(table.x, [1.5, 3.0]);
        assert_eq!(table.y, [-2000.0, 4.0]);
    }

    #[test]
    fn table_missing_empty_and_headerless_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.csv");
        let err = Table::read(&missing, &y()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("data file {}: no such file", missing.display())
        );
        assert_eq!(err.exit_code(), 2);
        let err = Table::read(dir.path(), &y()).unwrap_err().to_string();
        assert!(err.ends_with("is a directory, not a file"), "{err}");

        assert_eq!(message("", &y()), "data file t.csv: the file is empty");
        assert_eq!(
            message("\u{feff}\n \n", &y()),
            "data file t.csv: the file is empty"
        );
        assert_eq!(
            message("x,y\n", &y()),
            "data file t.csv: no data rows after the header"
        );
        assert_eq!(
            message("1,2\n3,4\n", &y()),
            "data file t.csv: the first line has no column names (a header row is required)"
        );
    }

    #[test]
    fn table_reads_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "x,y\n1,2\n").unwrap();
        let table = Table::read(&path, &y()).unwrap();
        assert_eq!(table.file_name, path.display().to_string());
        assert_eq!(
            (table.x.as_slice(), table.y.as_slice()),
            (&[1.0][..], &[2.0][..])
        );
    }

    #[test]
    fn table_column_name_errors() {
        assert_eq!(
            message("a,b\n1,2\n", &y()),
            "data file t.csv: no column `y` for the target; the columns are `a`, `b`"
        );
        let features = |names: &[&str]| TableOptions {
            features: Some(names.iter().map(|s| s.to_string()).collect()),
            ..y()
        };
        assert_eq!(
            message("a,y\n1,2\n", &features(&["b"])),
            "data file t.csv: no column `b` for the feature; the columns are `a`, `y`"
        );
        assert_eq!(
            message("a,y,a\n1,2,3\n", &y()),
            "data file t.csv: column `a` appears twice in the header (columns 1 and 3)"
        );
        assert_eq!(
            message("a,y\n1,2\n", &features(&["a", "a"])),
            "data file t.csv: feature `a` is listed twice"
        );
        assert_eq!(
            message("a,y\n1,2\n", &features(&["a", "y"])),
            "data file t.csv: `y` is the target; it cannot also be a feature"
        );
        assert_eq!(
            message("y\n1\n", &y()),
            "data file t.csv: no feature columns: the model needs at least one besides the target `y`"
        );
        assert_eq!(
            message("a,y\n1,2\n", &features(&[])),
            "data file t.csv: no feature columns: the model needs at least one besides the target `y`"
        );
        assert_eq!(
            message(",a,y\n0,1,2\n", &y()),
            "data file t.csv: column 1 has no name in the header; name it, or pick the features with --features"
        );
        let quote = TableOptions {
            delimiter: b'"',
            ..y()
        };
        assert_eq!(
            message("a,y\n1,2\n", &quote),
            "data file t.csv: the delimiter cannot be '\"'"
        );
        // An unnamed column nobody asks for is fine.
        let table = read(",a,y\n0,1,2\n", &features(&["a"])).unwrap();
        assert_eq!(table.x, [1.0]);
    }

    #[test]
    fn table_invalid_cells_name_line_and_column() {
        let text = "x1,x2,y\n1,2,3\n4,abc,6\n";
        assert_eq!(
            message(text, &y()),
            "data file t.csv: line 3, column `x2`: \"abc\" is not a number (use --drop-invalid-rows to skip such rows)"
        );
        assert_eq!(
            message("x1,x2,y\n1,,3\n", &y()),
            "data file t.csv: line 2, column `x2`: the cell is empty (use --drop-invalid-rows to skip such rows)"
        );
        for bad in ["nan", "NaN", "inf", "-infinity", "1e999"] {
            assert_eq!(
                message(&format!("x,y\n1,{bad}\n"), &y()),
                format!(
                    "data file t.csv: line 2, column `y`: {bad:?} is not a finite number (use --drop-invalid-rows to skip such rows)"
                )
            );
        }
        // A quoted field over two lines: the next row's line number is still the file's.
        assert_eq!(
            message("x,y\n\"1\n\",2\n3,?\n", &y()),
            "data file t.csv: line 4, column `y`: \"?\" is not a number (use --drop-invalid-rows to skip such rows)"
        );
        // Cells outside the columns in use are never looked at.
        let options = TableOptions {
            features: Some(vec!["x1".into()]),
            ..y()
        };
        assert_eq!(read(text, &options).unwrap().x, [1.0, 4.0]);
    }

    #[test]
    fn table_drops_invalid_rows_when_asked() {
        let options = TableOptions {
            drop_invalid_rows: true,
            ..y()
        };
        let table = read("x,y\n1,2\nnan,3\n4,\n5,6\n", &options).unwrap();
        assert_eq!(
            (table.x.as_slice(), table.y.as_slice()),
            (&[1.0, 5.0][..], &[2.0, 6.0][..])
        );
        assert_eq!(table.dropped_rows, 2);
        assert_eq!(
            message("x,y\nnan,3\n4,\n", &options),
            "data file t.csv: all 2 data rows have an invalid cell, so none is left (the first: line 2, column `x`: \"nan\" is not a finite number)"
        );
    }

    #[test]
    fn table_ragged_rows_name_both_counts() {
        let options = TableOptions {
            drop_invalid_rows: true,
            ..y()
        };
        assert_eq!(
            message("x,y\n1,2\n3,4,5\n", &options),
            "data file t.csv: line 3 has 3 fields, but the header has 2 columns"
        );
        assert_eq!(
            message("a,x,y\n1,2,3\n\n4,5\n", &y()),
            "data file t.csv: line 4 has 2 fields, but the header has 3 columns"
        );
        // Line numbers are the file's, with CRLF, blank lines and a BOM.
        assert_eq!(
            message("\u{feff}x,y\r\n\r\n1,2\r\n\r\n\r\n3\r\n", &y()),
            "data file t.csv: line 6 has 1 field, but the header has 2 columns"
        );
        assert_eq!(
            message("\n\nx,y\n1,2\n3\n", &y()),
            "data file t.csv: line 5 has 1 field, but the header has 2 columns"
        );
    }

    #[test]
    fn table_an_open_quote_is_named() {
        let err = message("a,y\n1,2\n3,\"4\n5,6\n", &y());
        assert!(
            err.contains("line 3, column `y`") && err.contains("a quote (\") left open?"),
            "{err}"
        );
    }

    #[test]
    fn table_long_cells_are_cut_in_messages() {
        let long = "z".repeat(100);
        let err = message(&format!("x,y\n1,{long}\n"), &y());
        assert!(
            err.contains(&format!("\"{}\"... is not a number", "z".repeat(40))),
            "{err}"
        );
    }

    #[test]
    fn a_header_read_as_one_column_suggests_the_delimiter_it_holds() {
        use crate::data::delimiter_hint::one_column_hint;
        let one = |s: &str| vec![s.to_string()];
        let one_column_hint_for = |columns: &[String]| one_column_hint(columns, None);
        assert_eq!(
            one_column_hint_for(&one("a;b;y")),
            " (the header reads as one column: is the file `;`-separated? pass --delimiter ';')"
        );
        assert!(one_column_hint_for(&one("a,b")).contains("--delimiter ','"));
        assert!(one_column_hint_for(&one("a\tb")).contains("--delimiter '\\t'"));
        assert_eq!(one_column_hint_for(&one("y")), "");
        assert_eq!(one_column_hint_for(&["a;b".into(), "y".into()]), "");
        // Not the delimiter the file was read with (a quoted name holding it).
        assert_eq!(one_column_hint(&one("a,b"), Some(',')), "");
        let predicted = crate::data::predictions::checked_prediction(5e39, "line 2").unwrap_err();
        assert_eq!(
            predicted,
            "line 2: the prediction (5e39) is out of f32 range (about ±3.4e38)"
        );
    }

    #[test]
    fn line_ends_count_lf_cr_and_crlf_once_even_across_blocks() {
        assert_eq!(line_ends(b"a\nb\r\nc\rd", false), 3);
        assert_eq!(line_ends(b"\r", false) + line_ends(b"\nx\n", true), 2);
        // A CR-only file gets a row bound, so the memory check sees its rows.
        let table = read("x,y\r1,2\r3,4\r", &y()).unwrap();
        assert_eq!(table.rows(), 2);
    }

    #[test]
    fn table_hash_in_pieces_is_the_hash_of_the_whole() {
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cut in [0, 1, 5, 31, 32, 33, 64, 100, 1999] {
            for piece in [1, 3, 32, 47, 4096] {
                let mut hasher = Xxh64::new(0);
                hasher.update(&bytes[..cut]);
                for chunk in bytes[cut..].chunks(piece) {
                    hasher.update(chunk);
                }
                assert_eq!(hasher.finish(), content_hash(&bytes), "{cut} {piece}");
            }
        }
    }

    #[test]
    fn table_wide_headers_are_linear_and_capped() {
        // 60,000 distinct names: quadratic duplicate checks took minutes at this width.
        let names: Vec<String> = (0..60_000).map(|i| format!("c{i}")).collect();
        let text = format!("{},y\n{}1\n", names.join(","), "0,".repeat(60_000));
        let table = read(&text, &y()).unwrap();
        assert_eq!((table.d(), table.rows()), (60_000, 1));
        let repeated = format!("{},c7,y\n", names.join(","));
        assert_eq!(
            message(&repeated, &y()),
            "data file t.csv: column `c7` appears twice in the header (columns 8 and 60001)"
        );
        let too_wide = format!("{}\n", vec!["a"; MAX_COLUMNS + 1].join(";"));
        let options = TableOptions {
            delimiter: b';',
            ..y()
        };
        let err = message(&too_wide, &options);
        assert!(
            err.contains("the header has 65537 columns, more than the 65536"),
            "{err}"
        );
    }

    #[test]
    fn table_hash_matches_xxh64_known_answers() {
        // From the reference implementation (libxxhash 0.8.1, XXH64 with seed 0).
        let long: Vec<u8> = (0..=255u8).cycle().take(1024).chain(*b"tail!").collect();
        let cases: [(&[u8], u64); 5] = [
            (b"", 0xef46_db37_51d8_e999),
            (b"a", 0xd24e_c4f1_a98c_6e5b),
            (b"abc", 0x44bc_2cf5_ad77_0999),
            (b"x,y\n1,2\n", 0x3e3a_9410_e49b_8724),
            (&long, 0x92fd_9dcc_ca84_e2eb),
        ];
        for (bytes, expected) in cases {
            assert_eq!(content_hash(bytes), expected, "{} bytes", bytes.len());
        }
        assert_eq!(hash_hex(0xef46_db37_51d8_e999), "ef46db3751d8e999");
        assert_eq!(hash_hex(0x1f), "000000000000001f");
    }

    /// A numeric CSV of `rows` rows × 11 columns (`x1`..`x10`, `y`), about 140 bytes a row.
    fn numeric_csv(rows: usize) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(rows * 140 + 64);
        let names: Vec<String> = (1..=10).map(|j| format!("x{j}")).collect();
        writeln!(out, "{},y", names.join(",")).unwrap();
        let mut state = 7u64;
        for _ in 0..rows {
            for j in 0..11 {
                state = crate::rng::splitmix64(state);
                let v = (state >> 11) as f64 / (1u64 << 53) as f64 * 200.0 - 100.0;
                let sep = if j == 10 { '\n' } else { ',' };
                write!(out, "{v:.9}{sep}").unwrap();
            }
        }
        out
    }

    #[test]
    fn table_reads_a_generated_numeric_file() {
        let bytes = numeric_csv(1000);
        let table = Table::parse(&bytes, Path::new("n.csv"), &y()).unwrap();
        assert_eq!((table.rows(), table.d()), (1000, 10));
        assert!(table.x.iter().chain(&table.y).all(|v| v.abs() <= 100.0));
    }

    /// Ingest and hash speed on 1,000,000 rows × 11 columns:
    /// `cargo test --release --features flex --lib -- --ignored table_speed --nocapture`
    #[test]
    #[ignore = "a measurement, prints MB/s"]
    fn table_speed() {
        let bytes = numeric_csv(1_000_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        std::fs::write(&path, &bytes).unwrap();
        let mb = bytes.len() as f64 / 1e6;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let table = Table::read(&path, &y()).unwrap();
            let read = start.elapsed().as_secs_f64();
            let start = std::time::Instant::now();
            let h = std::hint::black_box(content_hash(std::hint::black_box(&bytes)));
            let hash = start.elapsed().as_secs_f64();
            assert_eq!((table.rows(), table.content_hash), (1_000_000, h));
            println!(
                "{mb:.0} MB: read {:.0} MB/s ({read:.2} s), hash {:.1} GB/s",
                mb / read,
                mb / hash / 1e3
            );
        }
    }
}
