//! SafeTensors (`.safetensors`): the model's tensors `w` [1, 1] and `b` [1, 1], f32, with
//! burnfit's metadata as the JSON string under the header key `"burnfit"`. No optimizer state:
//! the format is for moving weights to other tools (Python's `safetensors`, PyTorch, burn-store).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{Contents, METADATA_KEY, NamedTensor};
use crate::host::HostTensor;

/// Serialises the named tensors and metadata.
pub fn to_bytes(tensors: &[NamedTensor], metadata: Option<String>) -> Result<Vec<u8>, String> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.value.shape.clone(),
                le_bytes(&t.value.data),
            )
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let header = metadata.map(|m| HashMap::from([(METADATA_KEY.to_string(), m)]));
    safetensors::serialize(views, header).map_err(|e| e.to_string())
}

/// Every tensor (f32 only) and the burnfit metadata, if present.
pub fn read(bytes: &[u8]) -> Result<Contents, String> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid SafeTensors file ({e})"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a valid SafeTensors file ({e})"))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor `{name}` is {:?}; burnfit reads F32",
                view.dtype()
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(NamedTensor {
            name,
            value: HostTensor::new(view.shape().to_vec(), data),
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let metadata = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY).cloned());
    Ok(Contents { tensors, metadata })
}

pub(super) fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
