//! Tensors held on the host: how parameters and optimizer state travel between devices and files.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};

/// A float tensor copied to host memory: its shape and its values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The shape; `[]` is a 0-d scalar.
    pub shape: Vec<usize>,
    /// The values, row-major; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

/// A host tensor with its name: a parameter (`w`, `layers.0.weight`) or a tensor of a
/// SafeTensors or burnpack file (`adam.w.m`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: HostTensor,
}

impl HostTensor {
    /// A tensor from a shape and matching values.
    ///
    /// # Panics
    /// When `data.len()` is not the product of `shape` (a programming error, not user input).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?} does not match data"
        );
        Self { shape, data }
    }

    /// A 0-d scalar.
    pub fn scalar(value: f32) -> Self {
        Self::new(vec![], vec![value])
    }

    /// Copies a device tensor to the host (a read-back: it waits for the device).
    pub fn from_tensor<const D: usize>(tensor: Tensor<D>) -> Result<Self> {
        let shape = tensor.shape().dims::<D>().to_vec();
        let data = tensor
            .try_into_data()
            .map_err(|e| Error::ReadBack(format!("{e:?}")))?
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::ReadBack(format!("{e:?}")))?;
        Ok(Self { shape, data })
    }

    /// Uploads to a device as a rank-`D` tensor.
    ///
    /// # Panics
    /// When the rank is not `D` (callers check shapes when loading user files).
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// The first value that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<f32> {
        self.data.iter().copied().find(|v| !v.is_finite())
    }
}
