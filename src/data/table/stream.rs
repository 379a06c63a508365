//! A CSV table read in one pass with bounded memory, its rows parsed on every core.
//!
//! One thread reads the file in blocks of [`CHUNK_BYTES`], hashes every byte (the same
//! [`super::content_hash`] as [`super::Table::read`]) and cuts the text into chunks at record
//! boundaries; worker threads parse chunks (the same cell rules and messages as
//! [`super::Table::read`]) and hand each chunk's rows to the caller's `work`; the caller's
//! `consume` then sees the results in file order, so what it builds does not depend on thread
//! timing. Memory is a few chunks in flight, whatever the file's size.
//!
//! Where to cut: after the last `\n` of a block that holds no quote character (nothing can be
//! open); otherwise csv itself reads the block and the cut goes before the last record it
//! started, which may be incomplete. Chunk boundaries depend only on the file's bytes, so two
//! passes over an unchanged file cut it the same way.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use super::{
    CsvText, Layout, MAX_HEADER_BYTES, ReadAt, TableOptions, Xxh64, line_at, open_regular, ragged,
    text_start,
};
use crate::error::{Error, Result};

/// The text handed to a worker at once.
const CHUNK_BYTES: usize = 4 << 20;

/// A record longer than this is refused (a quote left open swallows the rest of the file).
const MAX_RECORD_BYTES: usize = 64 << 20;

use super::chunk::{Chunk, StreamInfo};

/// A chunk's text, or the reader's error at that point of the file.
type ChunkText = std::result::Result<(Vec<u8>, u64), String>;

/// What a worker made of one chunk: (valid rows, dropped rows, the first invalid row's
/// message, the caller's result).
type Parsed<T> = std::result::Result<(u64, usize, Option<String>, T), String>;

/// Reads the table in `path` once: `work` runs on each chunk's rows on a worker thread, and
/// `consume` gets the results in file order on this thread. The errors are [`super::Table::read`]'s
/// (the header's first, then the first bad row in file order). A Parquet file is read by
/// [`super::parquet_file`] instead, a batch of rows to a chunk.
pub fn stream<T: Send>(
    path: &Path,
    options: &TableOptions,
    work: impl Fn(Chunk) -> T + Sync,
    mut consume: impl FnMut(usize, T),
) -> Result<StreamInfo> {
    if super::parquet_file::is_parquet(path) {
        return super::parquet_file::stream(path, options, work, consume);
    }
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
    let header_bytes = header.reader.position().byte();
    if header_bytes >= MAX_HEADER_BYTES {
        return Err(fail(format!(
            "line 1: the header is longer than {} MiB (a quote left open?)",
            MAX_HEADER_BYTES >> 20
        )));
    }
    let columns = header.columns;
    let layout = Layout::new(&columns, options).map_err(fail)?;
    let width = layout.feature_names.len() + 1;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);

    let (mut chunk_rows, mut dropped_rows, mut first_invalid) = (Vec::new(), 0, None);
    let mut error = None;
    let mut interrupted = None;
    let (chunk_tx, chunk_rx) = mpsc::sync_channel::<(usize, ChunkText)>(threads);
    let chunk_rx = Mutex::new(chunk_rx);
    let read = std::thread::scope(|s| {
        let (result_tx, result_rx) = mpsc::channel::<(usize, Parsed<T>)>();
        let (file, stop_ref) = (&file, &stop);
        let reader = s.spawn(move || {
            read_chunks(
                file,
                start,
                start + header_bytes,
                options.delimiter,
                stop_ref,
                chunk_tx,
            )
        });
        for _ in 0..threads {
            let result_tx = result_tx.clone();
            let (chunk_rx, layout, columns, work, stop) =
                (&chunk_rx, &layout, &columns, &work, &stop);
            s.spawn(move || {
                loop {
                    let next = chunk_rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|rx| rx.recv().map_err(|_| ()));
                    let Ok((index, text)) = next else { break };
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    let parsed = text.and_then(|(text, line_base): (Vec<u8>, u64)| {
                        let (rows, dropped, invalid) =
                            parse_chunk(&text, line_base, layout, columns, options)?;
                        let value = work(Chunk {
                            index,
                            d: width - 1,
                            rows: &rows,
                        });
                        Ok(((rows.len() / width) as u64, dropped, invalid, value))
                    });
                    if result_tx.send((index, parsed)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(result_tx);
        let mut pending = BTreeMap::new();
        for (index, parsed) in result_rx {
            if let Err(stop) = crate::signals::stop_reading(path) {
                interrupted = Some(stop);
                break;
            }
            pending.insert(index, parsed);
            while let Some(parsed) = pending.remove(&chunk_rows.len()) {
                match parsed {
                    Ok((rows, dropped, invalid, value)) => {
                        consume(chunk_rows.len(), value);
                        chunk_rows.push(rows);
                        dropped_rows += dropped;
                        if first_invalid.is_none() {
                            first_invalid = invalid;
                        }
                    }
                    Err(message) => {
                        error.get_or_insert(message);
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                if error.is_some() {
                    break;
                }
            }
            if error.is_some() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().expect("the reader thread does not panic")
    });
    if let Some(stop) = interrupted {
        return Err(stop);
    }
    if let Some(message) = error {
        return Err(fail(message));
    }
    let (content_hash, bytes) = read.map_err(fail)?;
    if chunk_rows.iter().sum::<u64>() == 0 {
        return Err(fail(match first_invalid {
            None => "no data rows after the header".into(),
            Some(first) => format!(
                "all {dropped_rows} data rows have an invalid cell, so none is left (the first: {first})"
            ),
        }));
    }
    Ok(StreamInfo {
        columns,
        feature_names: layout.feature_names,
        target_name: options.target.clone(),
        content_hash,
        bytes,
        chunk_rows,
        dropped_rows,
    })
}

/// A CSV file opened for a pass that keeps its rows' bytes (`predict --data`): the header, then
/// the text after it in chunks cut at record boundaries ([`RecordChunks::for_each`]). The same
/// header rules and cuts as [`stream`]; memory is a few chunks, whatever the file's size.
pub(crate) struct RecordChunks {
    file: std::fs::File,
    start: u64,
    body: u64,
    delimiter: u8,
    /// The header as the file has it.
    pub header: csv::ByteRecord,
    /// The header's names, ASCII whitespace trimmed.
    pub columns: Vec<String>,
}

impl RecordChunks {
    /// Opens `path` and reads its header; errors are messages for [`Error::Data`].
    pub(crate) fn open(path: &Path, delimiter: u8) -> std::result::Result<Self, String> {
        let file = open_regular(path)?;
        let at = |offset: u64| ReadAt {
            file: &file,
            offset,
        };
        let start = text_start(at(0))
            .map_err(|e| e.to_string())?
            .ok_or("the file is empty")?;
        let CsvText {
            mut reader,
            columns,
        } = CsvText::open(at(start).take(MAX_HEADER_BYTES), delimiter)?;
        let header = reader
            .byte_headers()
            .map_err(|e| format!("line 1: {e}"))?
            .clone();
        let body = start + reader.position().byte();
        if reader.position().byte() >= MAX_HEADER_BYTES {
            return Err(format!(
                "line 1: the header is longer than {} MiB (a quote left open?)",
                MAX_HEADER_BYTES >> 20
            ));
        }
        drop(reader);
        Ok(RecordChunks {
            file,
            start,
            body,
            delimiter,
            header,
            columns,
        })
    }

    /// `each(text, line_base)` on each chunk in file order, while another thread reads the
    /// next: `text` is whole records ([`csv_reader`] reads them), `line_base` the lines before
    /// it (a record's line is `line_base` plus its line in `text`). Stops at `each`'s first
    /// error; a read error (or a record over [`MAX_RECORD_BYTES`]) is `fail`'s.
    pub(crate) fn for_each<E>(
        self,
        fail: impl Fn(String) -> E,
        mut each: impl FnMut(&[u8], u64) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<(usize, ChunkText)>(1);
        std::thread::scope(|s| {
            let (file, stop_ref) = (&self.file, &stop);
            let (start, body, delimiter) = (self.start, self.body, self.delimiter);
            let reader = s.spawn(move || read_chunks(file, start, body, delimiter, stop_ref, tx));
            let mut result = Ok(());
            for (_, text) in &rx {
                let done = match text {
                    Ok((text, line_base)) => each(&text, line_base),
                    Err(message) => Err(fail(message)),
                };
                if let Err(e) = done {
                    result = Err(e);
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
            drop(rx);
            let read = reader.join().expect("the reader thread does not panic");
            result?;
            read.map(|_| ()).map_err(fail)
        })
    }
}

/// The reader thread: hashes the whole file and sends the text from `body` (the first data
/// row) in chunks cut at record boundaries, each with the number of `\n` before it since
/// `start` (csv counts lines by `\n`). Returns the hash and the file's size; an error in the
/// text (a record too long) goes down the channel in its place in the file.
fn read_chunks(
    file: &std::fs::File,
    start: u64,
    body: u64,
    delimiter: u8,
    stop: &AtomicBool,
    chunks: mpsc::SyncSender<(usize, ChunkText)>,
) -> std::result::Result<(u64, u64), String> {
    let mut hasher = Xxh64::new(0);
    let mut reader = ReadAt { file, offset: 0 };
    let mut buffer = Vec::new();
    let mut eof = false;
    // The header: hashed, its lines counted, dropped.
    while (buffer.len() as u64) < body && !eof {
        eof = fill(&mut reader, &mut buffer, &mut hasher)?;
    }
    let body = (body as usize).min(buffer.len());
    let mut newlines = count_newlines(&buffer[start as usize..body]);
    buffer.drain(..body);
    let mut index = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped".into());
        }
        while buffer.len() < CHUNK_BYTES && !eof {
            eof = fill(&mut reader, &mut buffer, &mut hasher)?;
        }
        if buffer.is_empty() {
            break;
        }
        let cut = if eof {
            // The last chunk: a quote left open makes the rest of the file one field. The chunk
            // goes first (a row's own error comes first, as when the table is read in memory),
            // then the open quote's.
            if let Some(opened) = open_quote_line(&buffer, delimiter) {
                let line = newlines + opened;
                let chunk = std::mem::take(&mut buffer);
                if chunks.send((index, Ok((chunk, newlines)))).is_ok() {
                    let _ = chunks.send((index + 1, Err(never_closed(line))));
                }
                return Err("stopped".into());
            }
            Some(buffer.len())
        } else {
            record_boundary(&buffer, delimiter)
        };
        let Some(cut) = cut else {
            if buffer.len() >= MAX_RECORD_BYTES {
                let line = newlines + 1;
                let _ = chunks.send((
                    index,
                    Err(format!(
                        "line {line}: a record longer than {} MiB (a quote (\") left open?)",
                        MAX_RECORD_BYTES >> 20
                    )),
                ));
                return Err("stopped".into());
            }
            // One record fills the buffer: read on until it ends.
            let target = buffer.len() + CHUNK_BYTES;
            while buffer.len() < target && !eof {
                eof = fill(&mut reader, &mut buffer, &mut hasher)?;
            }
            continue;
        };
        let rest = buffer.split_off(cut);
        let chunk = std::mem::replace(&mut buffer, rest);
        let base = newlines;
        newlines += count_newlines(&chunk);
        if chunks.send((index, Ok((chunk, base)))).is_err() {
            return Err("stopped".into());
        }
        index += 1;
    }
    Ok((hasher.finish(), reader.offset))
}

/// Appends up to [`CHUNK_BYTES`] of the file to `buffer` and hashes them; true at the end.
fn fill(
    reader: &mut ReadAt,
    buffer: &mut Vec<u8>,
    hasher: &mut Xxh64,
) -> std::result::Result<bool, String> {
    let old = buffer.len();
    // No more room than the rest of the file (and a byte to see its end): a small file costs
    // no 4 MiB buffer to zero.
    let left = reader
        .file
        .metadata()
        .map_or(u64::MAX, |m| m.len().saturating_sub(reader.offset));
    let room = usize::try_from(left.saturating_add(1)).map_or(CHUNK_BYTES, |n| n.min(CHUNK_BYTES));
    buffer.resize(old + room, 0);
    let mut filled = old;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let eof = filled < buffer.len();
    buffer.truncate(filled);
    hasher.update(&buffer[old..]);
    Ok(eof)
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Where the text can be cut so that everything before it is whole records (`None`: not
/// within `text`). `text` starts at a record boundary.
fn record_boundary(text: &[u8], delimiter: u8) -> Option<usize> {
    if !text.contains(&b'"')
        && let Some(last) = text.iter().rposition(|&b| b == b'\n')
    {
        return Some(last + 1);
    }
    let mut reader = csv_reader(text, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut last_start = 0;
    while let Ok(true) = reader.read_byte_record(&mut record) {
        last_start = record.position().map_or(0, |p| p.byte());
    }
    (last_start > 0).then_some(last_start as usize)
}

/// The line (1-based, in `text`) where a quoted field opens that `text` never closes, as the
/// csv crate reads quotes: a `"` at a field's start opens it, `""` inside is a quote, and a
/// quote elsewhere is a plain character. `text` starts at a record boundary. The csv crate
/// itself ends such a field silently at the end of the file, so every row after the quote
/// would vanish into it.
pub(crate) fn open_quote_line(text: &[u8], delimiter: u8) -> Option<u64> {
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let (mut at, mut line, mut opened) = (At::FieldStart, 1u64, 0u64);
    for &byte in text {
        let ends_field = byte == delimiter || byte == b'\n' || byte == b'\r';
        at = match (at, byte) {
            (At::FieldStart, b'"') => {
                opened = line;
                At::Quoted
            }
            (At::Quoted, b'"') => At::QuoteInQuoted,
            (At::Quoted, _) => At::Quoted,
            (At::QuoteInQuoted, b'"') => At::Quoted,
            (_, _) if ends_field => At::FieldStart,
            _ => At::Unquoted,
        };
        if byte == b'\n' {
            line += 1;
        }
    }
    (at == At::Quoted).then_some(opened)
}

/// The message for a quote [`open_quote_line`] found open.
pub(crate) fn never_closed(line: u64) -> String {
    format!(
        "line {line}: a quoted field opens here and is never closed (a missing \"?): the rest of the file would be one field"
    )
}

/// A reader of one chunk's records (no header; ragged rows reach the caller's check).
pub(crate) fn csv_reader(text: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text)
}

/// The valid rows of one chunk (row-major, features then target), the rows dropped and the
/// first dropped row's message; or the first bad row's message.
fn parse_chunk(
    text: &[u8],
    line_base: u64,
    layout: &Layout,
    columns: &[String],
    options: &TableOptions,
) -> std::result::Result<(Vec<f64>, usize, Option<String>), String> {
    let width = layout.feature_names.len() + 1;
    let mut reader = csv_reader(text, options.delimiter);
    let mut record = csv::ByteRecord::new();
    let mut row = vec![0.0; width];
    let mut rows = Vec::with_capacity(text.len() / 8);
    let (mut dropped, mut first_invalid) = (0, None);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(e.to_string()),
        }
        let line = || line_base + line_at(&record, |byte| &text[byte as usize..]);
        if record.len() != columns.len() {
            return Err(ragged(line(), record.len(), columns.len()));
        }
        match layout.parse_row(&record, &mut row) {
            Ok(()) => rows.extend_from_slice(&row),
            Err((column, problem)) => {
                let message = format!("line {}, column `{}`: {problem}", line(), columns[column]);
                if !options.drop_invalid_rows {
                    return Err(format!(
                        "{message} (use --drop-invalid-rows to skip such rows)"
                    ));
                }
                dropped += 1;
                first_invalid.get_or_insert(message);
            }
        }
    }
    Ok((rows, dropped, first_invalid))
}

#[cfg(test)]
mod tests {
    use super::super::Table;
    use super::*;

    /// The streamed rows and hash equal [`Table::read`]'s, and so do the errors.
    fn same_as_table(text: &[u8], options: &TableOptions) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        let table = Table::read(&path, options);
        let mut rows = Vec::new();
        let streamed = stream(&path, options, |c| c.rows.to_vec(), |_, r| rows.extend(r));
        match (table, streamed) {
            (Ok(table), Ok(info)) => {
                let d = table.d();
                let expected: Vec<f64> = (0..table.rows())
                    .flat_map(|i| table.row(i).iter().copied().chain([table.y[i]]))
                    .collect();
                assert_eq!(rows, expected);
                assert_eq!(info.content_hash, table.content_hash);
                assert_eq!(info.bytes, table.bytes);
                assert_eq!(info.dropped_rows, table.dropped_rows);
                assert_eq!(info.feature_names, table.feature_names);
                assert_eq!(info.rows() as usize, table.rows());
                assert_eq!(rows.len(), table.rows() * (d + 1));
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("{a:?} vs {:?}", b.map(|i| i.rows())),
        }
    }

    #[test]
    fn table_stream_equals_the_in_memory_read() {
        let options = TableOptions::new("y");
        // Several chunks: over 4 MiB of rows, with quotes in some of them, blank lines, CRLF.
        let mut big = String::from("\u{feff}a,b,y\r\n");
        for i in 0..900_000 {
            match i % 1000 {
                7 => big += &format!("\"{i}\",2,\"3\"\r\n"),
                8 => big += "\n",
                _ => big += &format!("{i},{}.5,{}\n", i % 7, i % 13),
            }
        }
        assert!(big.len() > 2 * CHUNK_BYTES);
        same_as_table(big.as_bytes(), &options);
        // Errors, with the line of the first bad row far into the file.
        let bad = big.clone() + "1,x,3\n";
        same_as_table(bad.as_bytes(), &options);
        let ragged = big.clone() + "1,3\n";
        same_as_table(ragged.as_bytes(), &options);
        let mut dropping = options.clone();
        dropping.drop_invalid_rows = true;
        same_as_table(bad.as_bytes(), &dropping);
        same_as_table(b"a,y\n", &options);
        same_as_table(b"a,y\nx,1\n", &dropping);
        same_as_table(b"a,y\r1,2\r3,5\r", &options);
        // A quoted field spanning lines, and one left open.
        same_as_table(
            b"a,n,y\n1,\"x\ny\",2\n3,4,5\n",
            &TableOptions {
                features: Some(vec!["a".into()]),
                ..options.clone()
            },
        );
        same_as_table(b"a,y\n1,\"2\n3,4\n", &options);
        // Left open in a column not read: the rest of the file would vanish into it.
        let open_note = TableOptions {
            features: Some(vec!["a".into()]),
            ..options.clone()
        };
        same_as_table(b"a,y,n\n1,2,ok\n2,4,\"oops\n3,6,ok\n4,8,ok\n", &open_note);
        let open_far = big.clone() + "1,2,\"oops\n3,6,ok\n";
        same_as_table(open_far.as_bytes(), &options);
    }
}
