//! TensorBoard event files (`train --tensorboard DIR`): the logged steps' scalars in the format
//! TensorBoard reads, written by hand in ~100 lines rather than through a crate. The crates that
//! exist (`tensorboard-rs`, unmaintained since 2022) pull in protobuf 2 and the `image` crate;
//! scalars need three protobuf messages and a checksum.
//!
//! A file is a sequence of TFRecords, each framed as
//! `u64 length (LE) | u32 masked CRC-32C of the length | data | u32 masked CRC-32C of the data`,
//! whose data is one `Event` protobuf (tensorflow/core/util/event.proto):
//! `wall_time` (double, field 1), `step` (int64, field 2), then either `file_version` (string,
//! field 3: `"brain.Event:2"`, the first event of every file) or `summary` (field 5), a
//! `Summary` whose repeated `value` (field 1) each hold `tag` (string, field 1) and
//! `simple_value` (float, field 2).
//!
//! Each record is built whole and written with one call, then flushed: a run that dies leaves
//! at most a cut-short last record, which TensorBoard's reader stops at.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The `file_version` of the first event: TensorBoard's current event format.
pub const FILE_VERSION: &str = "brain.Event:2";

/// An event file open for appending scalars.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

/// Refuses `dir` before any work when it exists and is not a directory.
pub fn check_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(Error::Misused {
            flag: "--tensorboard",
            message: format!("{} is not a directory", dir.display()),
        }),
        _ => Ok(()),
    }
}

impl EventWriter {
    /// Creates `dir` (and its parents) when missing and a new event file in it,
    /// `events.out.tfevents.<unix seconds>.<host name>.<process id>` (a name no other run
    /// takes: the file is created new, never replacing one), holding the file-version event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        check_dir(dir)?;
        let fail = |path: &Path, e: std::io::Error| Error::CheckpointWrite {
            path: path.to_owned(),
            message: e.to_string(),
        };
        fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        let now = unix_time();
        let name = format!(
            "events.out.tfevents.{}.{}.{}",
            now as u64,
            host_name(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| fail(&path, e))?;
        let mut writer = EventWriter { file, path };
        let mut event = Vec::new();
        put_double(&mut event, 1, now);
        put_varint_field(&mut event, 2, 0);
        put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
        writer.write_record(&event)?;
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event at `step` holding the scalars `values` (tag, value), stamped with the wall
    /// time now.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, tag.as_bytes());
            entry.push(2 << 3 | 5); // field 2, 32-bit
            entry.extend_from_slice(&(*value as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &entry);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, unix_time());
        put_varint_field(&mut event, 2, step);
        put_bytes(&mut event, 5, &summary);
        self.write_record(&event)
    }

    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let length = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&length);
        record.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
        record.extend_from_slice(data);
        record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.file
            .write_all(&record)
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::CheckpointWrite {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

fn unix_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's host name, with anything but `[A-Za-z0-9.-]` made `_` (it goes in a file
/// name); `localhost` when it has none.
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name: String = String::from_utf8_lossy(&buffer[..end])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ok && !name.is_empty() {
        name
    } else {
        "localhost".into()
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    put_varint(out, field << 3);
    put_varint(out, value);
}

fn put_double(out: &mut Vec<u8>, field: u64, value: f64) {
    put_varint(out, field << 3 | 1);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), a byte at a time from a table.
fn crc32c(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::LazyLock<[u32; 256]> = std::sync::LazyLock::new(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut crc = i as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    crc >> 1 ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
            *entry = crc;
        }
        table
    });
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ crc >> 8
    })
}

/// TFRecord's masked CRC: the CRC rotated right by 15 bits plus a constant, so that a CRC of
/// data holding CRCs stays well spread.
fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_answers() {
        // RFC 3720, B.4, and the classic check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_and_fields_as_protobuf_encodes_them() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        let mut out = Vec::new();
        put_varint_field(&mut out, 2, 1);
        put_bytes(&mut out, 3, b"ab");
        assert_eq!(out, [0x10, 0x01, 0x1A, 0x02, b'a', b'b']);
    }

    #[test]
    fn records_are_framed_with_masked_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(&dir.path().join("runs/a")).unwrap();
        writer.scalars(10, &[("loss", 0.5)]).unwrap();
        let bytes = fs::read(writer.path()).unwrap();
        let name = writer.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let mut at = 0;
        let mut records = Vec::new();
        while at < bytes.len() {
            let length = &bytes[at..at + 8];
            let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(length));
            let data = &bytes[at + 12..at + 12 + n];
            let crc = u32::from_le_bytes(bytes[at + 12 + n..at + 16 + n].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(data));
            records.push(data.to_vec());
            at += 16 + n;
        }
        assert_eq!(records.len(), 2);
        assert!(records[0].ends_with(b"\x1a\x0dbrain.Event:2"));
        // step 10, then the summary: one value, tag "loss", simple_value 0.5f32.
        let second = &records[1];
        assert_eq!(&second[9..11], &[0x10, 10]);
        assert_eq!(
            &second[11..],
            &[
                0x2A, 13, 0x0A, 11, 0x0A, 4, b'l', b'o', b's', b's', 0x15, 0, 0, 0, 0x3F
            ]
        );
        // A file where the directory should be is refused.
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(
            EventWriter::create(&file)
                .unwrap_err()
                .to_string()
                .contains("is not a directory")
        );
    }
}
