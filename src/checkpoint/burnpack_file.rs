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

/// Burnpack's header: magic (u32), version (u16), size of the CBOR tensor table (u32), all
/// little-endian; tensor data starts at 256-byte boundaries.
const HEADER_SIZE: usize = 10;
const TENSOR_ALIGNMENT: u64 = 256;

/// The part of burnpack's CBOR tensor table this check needs.
#[derive(serde::Deserialize)]
struct Table {
    tensors: std::collections::BTreeMap<String, Descriptor>,
}

#[derive(serde::Deserialize)]
struct Descriptor {
    data_offsets: (u64, u64),
}

/// Refuses tensors whose data overlap or start off burnpack's 256-byte alignment: burn's
/// reader checks only that each range lies inside the file, so two tensors could share bytes.
fn check_layout(bytes: &[u8]) -> Result<(), String> {
    let size = bytes
        .get(6..HEADER_SIZE)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("not a valid burnpack file (truncated header)")?;
    let table = bytes
        .get(HEADER_SIZE..HEADER_SIZE.saturating_add(size))
        .ok_or("not a valid burnpack file (truncated tensor table)")?;
    let table: Table = ciborium::from_reader(table)
        .map_err(|e| format!("not a valid burnpack file (tensor table: {e})"))?;
    let mut ranges: Vec<(u64, u64, &str)> = table
        .tensors
        .iter()
        .map(|(name, d)| (d.data_offsets.0, d.data_offsets.1, name.as_str()))
        .collect();
    ranges.sort();
    for (start, _, name) in &ranges {
        if start % TENSOR_ALIGNMENT != 0 {
            return Err(format!(
                "tensor `{name}` starts at offset {start}, not on burnpack's 256-byte alignment"
            ));
        }
    }
    for pair in ranges.windows(2) {
        let ((_, end, first), (start, _, second)) = (pair[0], pair[1]);
        if start < end {
            return Err(format!(
                "tensors `{first}` and `{second}` overlap in the file"
            ));
        }
    }
    Ok(())
}

/// Every tensor (f32 only) and the burnfit metadata, if present.
pub fn read(bytes: &[u8]) -> Result<Contents, String> {
    check_layout(bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostTensor;

    fn pack(metadata: &str) -> Vec<u8> {
        let tensors = ["a", "b"].map(|name| NamedTensor {
            name: name.into(),
            value: HostTensor::new(vec![2], vec![1.0, 2.0]),
        });
        to_bytes(&tensors, Some(metadata.into())).unwrap()
    }

    #[test]
    fn overlapping_or_misaligned_tensors_are_refused() {
        let good = pack("{}");
        assert!(read(&good).is_ok());
        // b's offsets in the CBOR table are the array [256, 264] (0x82, then 0x19 + u16 each);
        // rewrite them in place with same-length encodings: [0, 8] overlaps a, [264, 272] is
        // misaligned.
        let table_end = HEADER_SIZE + u32::from_le_bytes(good[6..10].try_into().unwrap()) as usize;
        let pattern = [0x82, 0x19, 0x01, 0x00, 0x19, 0x01, 0x08];
        let at = good[..table_end]
            .windows(pattern.len())
            .position(|w| w == pattern)
            .unwrap();
        let mut overlapping = good.clone();
        overlapping[at..at + 7].copy_from_slice(&[0x82, 0x19, 0x00, 0x00, 0x19, 0x00, 0x08]);
        let err = read(&overlapping).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        let mut misaligned = good.clone();
        misaligned[at..at + 7].copy_from_slice(&[0x82, 0x19, 0x01, 0x08, 0x19, 0x01, 0x10]);
        let err = read(&misaligned).unwrap_err();
        assert!(err.contains("alignment"), "{err}");
    }
}
