//! Saving a run's checkpoint to its `--out` file again and again (periodic saves, the final
//! save), with a fallback: when `--out` cannot be written after all (its directory was removed
//! or made read-only during the run, the disk is full), the checkpoint goes to a new file in the
//! system's temporary directory rather than being lost, and the error says where.

use std::path::{Path, PathBuf};

use super::{Checkpoint, Format, write_new_temp_file};
use crate::error::{Error, Result};

/// Where a run's checkpoints go, and the last fallback file written, if any.
#[derive(Debug)]
pub struct CheckpointWriter {
    out: PathBuf,
    format: Format,
    force: bool,
    rescued: Option<PathBuf>,
}

impl CheckpointWriter {
    /// Saves to `out` in `format` (replacing a write-protected file only when `force`).
    pub fn new(out: &Path, format: Format, force: bool) -> Self {
        Self {
            out: out.to_owned(),
            format,
            force,
            rescued: None,
        }
    }

    /// The file saved to.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Saves `checkpoint` (its data path re-expressed beside `out`, its optimizer state
    /// dropped for a format that cannot keep it), atomically. On a write error the checkpoint
    /// goes to a fallback file and the error is [`Error::SavedElsewhere`], naming it; only the
    /// newest fallback of the run is kept.
    pub fn save(&mut self, checkpoint: Checkpoint) -> Result<()> {
        let checkpoint = if self.format.keeps_optimizer() {
            checkpoint
        } else {
            checkpoint.without_optimizer()
        };
        let beside = checkpoint.clone().with_data_path_beside(&self.out);
        match beside.save_replacing(&self.out, self.format, self.force) {
            // The fallback file lies elsewhere: it records the data file's absolute path.
            Err(original @ Error::CheckpointWrite { .. }) => {
                self.rescue(&checkpoint.with_data_path_absolute(), original)
            }
            other => other,
        }
    }

    fn rescue(&mut self, checkpoint: &Checkpoint, original: Error) -> Result<()> {
        let extension = match self.format {
            Format::Json => ".json",
            Format::Safetensors => ".safetensors",
            Format::Bpk => ".bpk",
        };
        // A fresh file with a random name, written through its descriptor: a name others
        // could predict in a shared /tmp would let them redirect the write.
        let rescue = checkpoint
            .check_finite()
            .and_then(|()| {
                checkpoint
                    .to_bytes(self.format)
                    .map_err(|message| Error::CheckpointWrite {
                        path: self.out.clone(),
                        message,
                    })
            })
            .and_then(|bytes| write_new_temp_file("burnfit-rescued-", extension, &bytes));
        match rescue {
            Ok(rescued) => {
                if let Some(older) = self.rescued.replace(rescued.clone()) {
                    let _ = std::fs::remove_file(older);
                }
                Err(Error::SavedElsewhere {
                    original: Box::new(original),
                    rescued,
                })
            }
            // Both failed: the first cause matters most; name the second too.
            Err(fallback) => Err(Error::CheckpointWrite {
                path: self.out.clone(),
                message: format!("{original}; the fallback failed as well: {fallback}"),
            }),
        }
    }
}
