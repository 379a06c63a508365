//! The device's buffer limit for the fused GPU kernels, checked before a run: a table or a
//! batch whose buffers exceed it is refused in one line (cubecl would fail the allocation
//! mid-run, with a message of its internals).

use crate::backend::Backend;
use crate::engine::EngineKind;
use crate::error::{Error, Result, bytes_text};
use crate::fused_step::kernel::dense::DenseGpu;

/// Refuses a batch whose buffers in the fused kernel (its scratch, its partial sums) exceed the
/// largest buffer the device binds (`room` bytes), in one line, before anything runs: cubecl
/// would fail the allocation mid-run.
pub fn check_batch_fits(
    backend: &Backend,
    kernel: &DenseGpu,
    batch: usize,
    room: u64,
) -> Result<()> {
    let needed = kernel.largest_buffer_bytes(batch);
    // The kernel indexes its buffers with 32-bit numbers.
    let room = room.min(4 * u64::from(u32::MAX));
    if needed <= room {
        return Ok(());
    }
    Err(Error::BatchTooLarge {
        fused_would_fit: false,
        batch,
        needed_bytes: needed,
        room_bytes: room,
        place: format!(
            "largest buffer of {} (the fused kernel's buffers for the batch: activations, partial sums)",
            backend
                .adapter
                .as_ref()
                .map_or("the device", |a| a.name.as_str())
        ),
    })
}

/// Refuses a table of `bytes` that does not fit in one device buffer, in one line.
pub fn check_table_fits(backend: &Backend, bytes: u64) -> Result<()> {
    let Some(adapter) = &backend.adapter else {
        return Ok(());
    };
    if bytes <= adapter.max_buffer_bytes {
        return Ok(());
    }
    Err(Error::EngineUnsupported {
        engine: EngineKind::Fused.name(),
        message: format!(
            "on wgpu holds the training rows in one device buffer: {} here, more than the {} {} takes; use --out-of-core (a chunk of batches at a time), --backend flex, or --engine autodiff",
            bytes_text(bytes),
            bytes_text(adapter.max_buffer_bytes),
            adapter.name
        ),
    })
}
