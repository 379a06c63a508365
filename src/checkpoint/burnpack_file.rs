//! burn's burnpack (`.bpk`): the model's tensors `w` and `b` under their module paths, so a burn
//! program loads them into its own `LinearRegression` with `BurnpackStore`, and Adam's state
//! beside them under `adam.*`, with burnfit's metadata as the burnpack metadata key `"burnfit"`.

use burn::store::burn_pack::{Bytes, DType, Reader, Tensor as PackTensor, Writer};

use super::safetensors_file::le_bytes;
use super::{Contents, METADATA_KEY, NamedTensor};
use crate::host::HostTensor;

/// Serialises the named tensors and metadata.
pub fn to_bytes(tensors: &[NamedTensor], metadata: Option<String>) -> Result<Vec<u8>, String> {
    let pack: Vec<PackTensor> = tensors
        .iter()
        .map(|t| {
            PackTensor::new(
                t.name.clone(),
                DType::F32,
                burn::tensor::Shape::from(t.value.shape.clone()),
                None,
                Bytes::from_bytes_vec(le_bytes(&t.value.data)),
            )
        })
        .collect();
    let mut writer = Writer::new(pack);
    if let Some(metadata) = &metadata {
        writer = writer.with_metadata(METADATA_KEY, metadata);
    }
    let bytes = writer.into_bytes().map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

/// Every tensor (f32 only) and the burnfit metadata, if present.
pub fn read(bytes: &[u8]) -> Result<Contents, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("not a valid burnpack file ({e})");
    let reader =
        Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| invalid(&e))?;
    let metadata = reader.metadata().get(METADATA_KEY).cloned();
    let mut tensors = Vec::new();
    for tensor in reader.into_tensors().map_err(|e| invalid(&e))? {
        let (name, dtype, shape, _, data) = tensor.into_parts().map_err(|e| invalid(&e))?;
        if dtype != DType::F32 {
            return Err(format!("tensor `{name}` is {dtype:?}; burnfit reads F32"));
        }
        let shape: Vec<usize> = shape.to_vec();
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.len() != shape.iter().product::<usize>() {
            return Err(format!(
                "tensor `{name}`: shape {shape:?} does not match its {} values",
                values.len()
            ));
        }
        tensors.push(NamedTensor {
            name,
            value: HostTensor::new(shape, values),
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Contents { tensors, metadata })
}
