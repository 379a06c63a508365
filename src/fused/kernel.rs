//! TEMPORARY STUB (being written by a helper).
use burn::tensor::{Device, Tensor};

pub struct GpuExecutor;
impl GpuExecutor {
    pub fn new(_device: &Device) -> Self {
        GpuExecutor
    }
    pub fn run_chunk(&mut self, _state: super::FusedState, _spec: &super::ChunkSpec) -> Result<super::ChunkResult, String> {
        Err("stub".into())
    }
    pub fn max_chunk_steps(&self, _batch: usize) -> u64 {
        1000
    }
}
pub fn line_batch(stream: &crate::data::LineStream, step: u64, batch: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let (x, y) = stream.batch(step, batch);
    (
        Tensor::from_data(burn::tensor::TensorData::new(x, [batch, 1]), device),
        Tensor::from_data(burn::tensor::TensorData::new(y, [batch, 1]), device),
    )
}
