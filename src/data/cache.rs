//! The binary row cache of a CSV table, for out-of-core training: the columns in use (the
//! features in the model's order, then the target) of every valid row as little-endian f32,
//! row-major, built once by a streaming parse ([`crate::data::table::stream`]) and read back
//! by positioned reads, a block at a time, so memory stays bounded whatever the file's size.
//!
//! Layout: `rows × (d + 1)` f32 from byte 0 (a row at a fixed offset: any block is one read),
//! then the [`CacheHeader`] as JSON, its length (u64 LE), the format version (u32 LE) and the
//! magic `BFCACHE\0`. A file whose trailer, header or length disagrees is not a cache.
//!
//! Where: `<data file name>.<key>.burnfit-cache` beside the data file, or in `--cache-dir`.
//! `<key>` is a hash of the parse options that change the columns (target, resolved features,
//! delimiter, `--drop-invalid-rows`), of the format version and of the data file's absolute
//! path (two files of one name sharing a `--cache-dir` keep apart); the header records the data
//! file's content hash and size. A cache is used only when both agree with the file as it is
//! now; otherwise it is rebuilt (so a changed file replaces its stale cache, and other options
//! get caches of their own).
//!
//! Safety: a cache is written to a temporary file in the same directory and renamed into place
//! only when complete and flushed to disk, so a reader (another process too) never sees a
//! half-written cache, and an existing cache is replaced whole or not at all. Two processes
//! building the same cache at once each write their own temporary file; the last rename wins,
//! and both are complete.

use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::table::stream::stream;
use super::table::{Survey, TableOptions, Xxh64, hash_hex};
use crate::error::{Error, Result};

/// The format version; a cache of another version is rebuilt.
pub const CACHE_VERSION: u32 = 1;

/// The last 8 bytes of every cache file.
const MAGIC: &[u8; 8] = b"BFCACHE\0";

/// The trailer after the header: its length (u64), the version (u32), the magic.
const TRAILER_BYTES: u64 = 8 + 4 + 8;

/// The name every cache file ends with.
pub const CACHE_SUFFIX: &str = ".burnfit-cache";

/// What a cache file says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheHeader {
    /// The data file's [`crate::data::table::content_hash`], as 16 hex digits.
    pub content_hash: String,
    /// The data file's size in bytes.
    pub source_bytes: u64,
    /// The hash of the parse options (see the module doc), as 16 hex digits.
    pub options_key: String,
    /// Every column of the data file's header.
    pub columns: Vec<String>,
    /// The feature columns, in the order of a row's values.
    pub feature_names: Vec<String>,
    /// The target column (a row's last value).
    pub target: String,
    /// Valid rows cached.
    pub rows: u64,
    /// Rows skipped for an invalid cell (only with `--drop-invalid-rows`).
    pub dropped_rows: usize,
}

/// An open, checked row cache.
#[derive(Debug)]
pub struct RowCache {
    file: std::fs::File,
    path: PathBuf,
    header: CacheHeader,
}

/// How a cache came to be used: found current, or built now (how long it took).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CacheOrigin {
    /// A current cache was found.
    Reused,
    /// The cache was built (or rebuilt) by this run.
    Built {
        /// The time the build took, the parse and the flush to disk included.
        took: Duration,
    },
}

impl RowCache {
    /// The current cache of the data file `data` read with `options` (`survey`: its first pass,
    /// with the content hash), in `dir` (`None`: beside the data file); built when missing or
    /// stale.
    pub fn open_or_build(
        data: &Path,
        options: &TableOptions,
        survey: &Survey,
        dir: Option<&Path>,
    ) -> Result<(RowCache, CacheOrigin)> {
        let path = cache_path(data, options, survey, dir);
        let key = hash_hex(options_key(data, options, survey));
        let wanted = |h: &CacheHeader| {
            h.content_hash == hash_hex(survey.content_hash)
                && h.source_bytes == survey.bytes
                && h.options_key == key
                && h.feature_names == survey.feature_names
        };
        if let Ok(cache) = RowCache::open(&path)
            && wanted(&cache.header)
        {
            return Ok((cache, CacheOrigin::Reused));
        }
        let start = Instant::now();
        build(data, options, survey, &path, &key)?;
        let cache = RowCache::open(&path).map_err(|message| Error::Cache {
            path: path.clone(),
            message: format!("the cache just written does not read back: {message}"),
        })?;
        if !wanted(&cache.header) {
            // Another process renamed its own cache of another version of the file over ours.
            return Err(Error::Cache {
                path,
                message: "replaced by another process while this one built it (is the data file being rewritten?)".into(),
            });
        }
        Ok((
            cache,
            CacheOrigin::Built {
                took: start.elapsed(),
            },
        ))
    }

    /// Opens and checks the cache file at `path`; the message says why it is not a cache.
    pub fn open(path: &Path) -> std::result::Result<RowCache, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len < TRAILER_BYTES {
            return Err("too short for a cache".into());
        }
        let mut trailer = [0u8; TRAILER_BYTES as usize];
        file.read_exact_at(&mut trailer, len - TRAILER_BYTES)
            .map_err(|e| e.to_string())?;
        if &trailer[12..] != MAGIC {
            return Err("not a burnfit cache".into());
        }
        let version = u32::from_le_bytes(trailer[8..12].try_into().expect("4 bytes"));
        if version != CACHE_VERSION {
            return Err(format!("cache format {version}, not {CACHE_VERSION}"));
        }
        let header_len = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
        let data_len = (len - TRAILER_BYTES)
            .checked_sub(header_len)
            .ok_or("the header length is past the start of the file")?;
        let mut json = vec![0u8; usize::try_from(header_len).map_err(|e| e.to_string())?];
        file.read_exact_at(&mut json, data_len)
            .map_err(|e| e.to_string())?;
        let header: CacheHeader = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        let width = header.feature_names.len() as u64 + 1;
        if header.rows.checked_mul(width * 4) != Some(data_len) {
            return Err(format!(
                "{data_len} bytes of rows, not the {} rows × {width} values of its header",
                header.rows
            ));
        }
        Ok(RowCache {
            file,
            path: path.to_owned(),
            header,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the cache says about itself.
    pub fn header(&self) -> &CacheHeader {
        &self.header
    }

    /// The number of rows.
    pub fn rows(&self) -> u64 {
        self.header.rows
    }

    /// The number of features.
    pub fn d(&self) -> usize {
        self.header.feature_names.len()
    }

    /// Values a row: the features, then the target.
    pub fn width(&self) -> usize {
        self.d() + 1
    }

    /// A second handle on the same file (for a reader thread).
    pub fn try_clone(&self) -> Result<RowCache> {
        Ok(RowCache {
            file: self.file.try_clone().map_err(|e| self.error(e))?,
            path: self.path.clone(),
            header: self.header.clone(),
        })
    }

    /// Reads rows `first..first + n` into `out` (`n × width` values), with `bytes` as the
    /// buffer for their text.
    pub fn read_rows(
        &self,
        first: u64,
        n: usize,
        bytes: &mut Vec<u8>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let width = self.width();
        assert!(first + n as u64 <= self.rows(), "rows past the cache's end");
        bytes.resize(n * width * 4, 0);
        self.file
            .read_exact_at(bytes, first * width as u64 * 4)
            .map_err(|e| self.error(e))?;
        out.clear();
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
        Ok(())
    }

    fn error(&self, e: std::io::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

/// The hash of the parse options that change a cache's columns and of the data file's path (see
/// the module doc).
fn options_key(data: &Path, options: &TableOptions, survey: &Survey) -> u64 {
    let mut hasher = Xxh64::new(0);
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(&CACHE_VERSION.to_le_bytes());
    let path = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_owned());
    field(path.as_os_str().as_encoded_bytes());
    field(options.target.as_bytes());
    for name in &survey.feature_names {
        field(name.as_bytes());
    }
    field(&[options.delimiter, u8::from(options.drop_invalid_rows)]);
    hasher.finish()
}

/// Where the cache of `data` read with `options` lives.
pub fn cache_path(
    data: &Path,
    options: &TableOptions,
    survey: &Survey,
    dir: Option<&Path>,
) -> PathBuf {
    let name = data
        .file_name()
        .map_or("data".into(), |n| n.to_string_lossy().into_owned());
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => match data.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        },
    };
    dir.join(format!(
        "{name}.{}{CACHE_SUFFIX}",
        hash_hex(options_key(data, options, survey))
    ))
}

/// A build's temporary file not written to for this long was left by a killed process (a live
/// build writes every few milliseconds), and is removed by the next build of the same cache.
pub const STALE_BUILD_AGE: Duration = Duration::from_secs(10 * 60);

/// Removes the temporary files of builds of the cache `name` in `dir` that a killed process
/// left behind (see [`STALE_BUILD_AGE`]); a build in progress elsewhere is left alone.
fn remove_stale_builds(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let stale = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_BUILD_AGE);
        if file_name.starts_with(&prefix) && file_name.ends_with(".building") && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Parses `data` in one streaming pass into a temporary file beside `path`, flushes it to disk
/// and renames it to `path`. On any error the temporary file is removed and `path` untouched.
fn build(
    data: &Path,
    options: &TableOptions,
    survey: &Survey,
    path: &Path,
    key: &str,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let cache_error = |message: String| Error::Cache {
        path: path.to_owned(),
        message,
    };
    let dir_error = |e: std::io::Error| Error::Cache {
        path: dir.to_owned(),
        message: format!("{e}; choose a writable directory for the cache with --cache-dir"),
    };
    if !dir.is_dir() {
        let what = if dir.exists() {
            "not a directory (--cache-dir)"
        } else {
            "no such directory (--cache-dir)"
        };
        return Err(Error::Cache {
            path: dir.to_owned(),
            message: what.into(),
        });
    }
    let name = path
        .file_name()
        .map_or("cache".into(), |n| n.to_string_lossy().into_owned());
    remove_stale_builds(dir, &name);
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".building")
        // Created with this mode, the umask applies, as for any new file.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(dir_error)?;
    let mut out = BufWriter::with_capacity(4 << 20, temp.as_file());
    let mut write_error = None;
    let info = stream(
        data,
        options,
        |chunk| {
            let mut bytes = Vec::with_capacity(chunk.rows.len() * 4);
            for v in chunk.rows {
                bytes.extend_from_slice(&(*v as f32).to_le_bytes());
            }
            bytes
        },
        |_, bytes| {
            if write_error.is_none()
                && let Err(e) = out.write_all(&bytes)
            {
                write_error = Some(e);
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(cache_error(format!("writing it failed: {e}")));
    }
    if info.content_hash != survey.content_hash || info.bytes != survey.bytes {
        return Err(Error::Data {
            path: data.to_owned(),
            message: "the file changed while it was read; run again on a file that stays put"
                .into(),
        });
    }
    let header = CacheHeader {
        content_hash: hash_hex(info.content_hash),
        source_bytes: info.bytes,
        options_key: key.to_owned(),
        columns: info.columns.clone(),
        feature_names: info.feature_names.clone(),
        target: info.target_name.clone(),
        rows: info.rows(),
        dropped_rows: info.dropped_rows,
    };
    let json = serde_json::to_vec(&header).expect("a header serializes");
    let finish = |out: &mut BufWriter<&std::fs::File>| -> std::io::Result<()> {
        out.write_all(&json)?;
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(&CACHE_VERSION.to_le_bytes())?;
        out.write_all(MAGIC)?;
        out.flush()?;
        out.get_ref().sync_all()
    };
    finish(&mut out).map_err(|e| cache_error(format!("writing it failed: {e}")))?;
    drop(out);
    temp.persist(path)
        .map_err(|e| cache_error(format!("could not move it into place: {}", e.error)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    fn open(path: &Path, options: &TableOptions) -> (RowCache, CacheOrigin) {
        let survey = Survey::of(path, options).unwrap();
        RowCache::open_or_build(path, options, &survey, None).unwrap()
    }

    fn rows(cache: &RowCache) -> Vec<f32> {
        let (mut bytes, mut out) = (Vec::new(), Vec::new());
        cache
            .read_rows(0, cache.rows() as usize, &mut bytes, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn cache_holds_the_columns_in_use_as_f32_rows() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        write(&data, "a,y,b,c\n1,2,3,x\n4.5,5,6,y\n");
        let options = TableOptions {
            features: Some(vec!["b".into(), "a".into()]),
            ..TableOptions::new("y")
        };
        let (cache, origin) = open(&data, &options);
        assert!(matches!(origin, CacheOrigin::Built { .. }));
        assert_eq!((cache.rows(), cache.d()), (2, 2));
        assert_eq!(rows(&cache), [3.0, 1.0, 2.0, 6.0, 4.5, 5.0]);
        assert_eq!(cache.header().columns, ["a", "y", "b", "c"]);
        assert_eq!(cache.path().parent(), Some(dir.path()));
        let name = cache
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("d.csv.") && name.ends_with(CACHE_SUFFIX),
            "{name}"
        );
        // Only the cache is left in the directory: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // The second open reuses it.
        assert_eq!(open(&data, &options).1, CacheOrigin::Reused);
    }

    #[test]
    fn cache_is_rebuilt_when_the_file_changes_and_kept_apart_per_options() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        write(&data, "x,y\n1,2\n3,4\n");
        let y = TableOptions::new("y");
        let (first, _) = open(&data, &y);
        assert_eq!(rows(&first), [1.0, 2.0, 3.0, 4.0]);
        // Same size, other bytes: the content hash tells.
        write(&data, "x,y\n1,2\n3,5\n");
        let (second, origin) = open(&data, &y);
        assert!(matches!(origin, CacheOrigin::Built { .. }));
        assert_eq!(second.path(), first.path(), "replaced in place");
        assert_eq!(rows(&second), [1.0, 2.0, 3.0, 5.0]);
        // The handle opened before still reads the old, complete cache.
        assert_eq!(rows(&first), [1.0, 2.0, 3.0, 4.0]);
        // Another target: another cache beside it.
        let x = TableOptions::new("x");
        let (other, origin) = open(&data, &x);
        assert!(matches!(origin, CacheOrigin::Built { .. }));
        assert_ne!(other.path(), second.path());
        assert_eq!(rows(&other), [2.0, 1.0, 5.0, 3.0]);
        assert_eq!(open(&data, &y).1, CacheOrigin::Reused);
        let dropping = TableOptions {
            drop_invalid_rows: true,
            ..TableOptions::new("y")
        };
        assert_ne!(
            cache_path(
                &data,
                &dropping,
                &Survey::of(&data, &dropping).unwrap(),
                None
            ),
            second.path()
        );
        // A file of the same name elsewhere, sharing a cache directory: a cache of its own.
        let elsewhere = dir.path().join("sub");
        std::fs::create_dir(&elsewhere).unwrap();
        let twin = elsewhere.join("d.csv");
        write(&twin, "x,y\n7,8\n9,10\n");
        let survey = Survey::of(&twin, &y).unwrap();
        let (twin_cache, _) =
            RowCache::open_or_build(&twin, &y, &survey, Some(dir.path())).unwrap();
        assert_ne!(twin_cache.path(), second.path());
        assert_eq!(twin_cache.path().parent(), Some(dir.path()));
        assert_eq!(rows(&twin_cache), [7.0, 8.0, 9.0, 10.0]);
        assert_eq!(
            rows(&RowCache::open(second.path()).unwrap()),
            [1.0, 2.0, 3.0, 5.0]
        );
    }

    #[test]
    fn cache_readers_never_see_a_half_written_cache_while_two_builders_race() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        let mut text = String::from("x,y\n");
        for i in 0..20_000 {
            text.push_str(&format!("{i},{}\n", 2 * i));
        }
        write(&data, &text);
        let y = TableOptions::new("y");
        let survey = Survey::of(&data, &y).unwrap();
        let path = cache_path(&data, &y, &survey, None);
        let key = hash_hex(options_key(&data, &y, &survey));
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..5 {
                        build(&data, &y, &survey, &path, &key).unwrap();
                    }
                });
            }
            let reader = s.spawn(|| {
                let mut complete = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    // Not there yet, or whole: never a cache cut short.
                    if let Ok(cache) = RowCache::open(&path) {
                        let values = rows(&cache);
                        assert_eq!(values.len(), 40_000);
                        assert_eq!((values[39_998], values[39_999]), (19_999.0, 39_998.0));
                        complete += 1;
                    }
                }
                complete
            });
            let start = Instant::now();
            while !path.exists() && start.elapsed() < Duration::from_secs(60) {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(50));
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(reader.join().unwrap() > 0);
        });
        // Both builders' temporary files are gone: only the data file and the cache are left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn cache_a_damaged_file_is_rebuilt_and_a_bad_table_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        write(&data, "x,y\n1,2\n3,4\n");
        let y = TableOptions::new("y");
        let (cache, _) = open(&data, &y);
        let path = cache.path().to_owned();
        drop(cache);
        // Cut short: the length no longer matches the header.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[4..]).unwrap();
        assert!(RowCache::open(&path).is_err());
        let (cache, origin) = open(&data, &y);
        assert!(matches!(origin, CacheOrigin::Built { .. }));
        assert_eq!(rows(&cache), [1.0, 2.0, 3.0, 4.0]);
        std::fs::write(&path, b"this is not a cache, only some text").unwrap();
        assert_eq!(RowCache::open(&path).unwrap_err(), "not a burnfit cache");

        let bad = dir.path().join("bad.csv");
        write(&bad, "x,y\n1,2\n3,?\n");
        let survey = Survey::of(&bad, &y).unwrap();
        let err = RowCache::open_or_build(&bad, &y, &survey, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "data file {}: line 3, column `y`: \"?\" is not a number (use --drop-invalid-rows to skip such rows)",
                bad.display()
            )
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("bad.csv.") || n.starts_with(".bad.csv."))
            .collect();
        assert!(names.is_empty(), "{names:?}");

        // A killed build's leftover is removed by the next build; a live one (fresh) is not.
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stale = dir.path().join(format!(".{name}.abc123.building"));
        let live = dir.path().join(format!(".{name}.def456.building"));
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(&live, b"half").unwrap();
        let old = std::time::SystemTime::now() - STALE_BUILD_AGE - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::write(&data, "x,y\n1,2\n3,6\n").unwrap();
        assert!(matches!(open(&data, &y).1, CacheOrigin::Built { .. }));
        assert!(!stale.exists() && live.exists());
        std::fs::remove_file(&live).unwrap();

        let missing = dir.path().join("nowhere");
        let err =
            RowCache::open_or_build(&data, &y, &Survey::of(&data, &y).unwrap(), Some(&missing))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "data cache {}: no such directory (--cache-dir)",
                missing.display()
            )
        );
        let err = RowCache::open_or_build(&data, &y, &Survey::of(&data, &y).unwrap(), Some(&data))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "data cache {}: not a directory (--cache-dir)",
                data.display()
            )
        );
    }
    #[test]
    fn a_stop_signal_during_the_build_leaves_no_file_and_names_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("big.csv");
        let mut text = String::from("x,y\n");
        for i in 0..20_000 {
            text.push_str(&format!("{i},{}\n", 2 * i));
        }
        std::fs::write(&data, text).unwrap();
        let y = TableOptions::new("y");
        let survey = Survey::of(&data, &y).unwrap();
        crate::signals::pretend_received_here(signal_hook::consts::SIGINT);
        let err = RowCache::open_or_build(&data, &y, &survey, None).unwrap_err();
        let survey_err = Survey::of(&data, &y).unwrap_err();
        crate::signals::pretend_received_here(0);
        let expected = format!(
            "interrupted by SIGINT while reading {}; nothing was trained or saved",
            data.display()
        );
        assert_eq!(err.to_string(), expected);
        assert_eq!(survey_err.to_string(), expected);
        assert_eq!(err.exit_code(), 130);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["big.csv"], "no cache, no temporary file");
        // Without the signal the same build goes through.
        assert!(RowCache::open_or_build(&data, &y, &survey, None).is_ok());
    }
}
