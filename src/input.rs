//! Reading the files users hand to burnfit (checkpoints, configs) without trusting them.

use std::io::Read;
use std::path::Path;

/// The bytes of a regular file of at most `max` bytes. Special files are refused: `/dev/zero`
/// never ends and a FIFO may never be written to.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory, not a file".into());
    }
    if !meta.is_file() {
        return Err("is not a regular file (a device, FIFO or socket)".into());
    }
    if meta.len() > max {
        return Err(format!(
            "is {} bytes, more than the {max} this reads",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("is more than the {max} bytes this reads"));
    }
    Ok(bytes)
}
