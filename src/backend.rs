//! Which burn backend runs the model: the only place that knows which ones are compiled in.

use std::fmt;

use burn::tensor::Device;
use serde::Serialize;

use crate::error::{Error, Result};

/// A burn backend burnfit can train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's NdArray CPU backend (cargo feature `ndarray`).
    Ndarray,
    /// burn's Flex CPU backend (cargo feature `flex`).
    Flex,
    /// burn's wgpu GPU backend: Vulkan, Metal or DX12 (cargo feature `wgpu`).
    Wgpu,
}

/// What the user asked for: one backend, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendChoice {
    /// A real GPU through wgpu for batches of 65,536 and more (1,048,576 with the fused
    /// engine) when one is compiled in and present, else the preferred CPU backend.
    #[default]
    Auto,
    /// burn's NdArray CPU backend.
    Ndarray,
    /// burn's Flex CPU backend.
    Flex,
    /// burn's wgpu GPU backend.
    Wgpu,
}

impl BackendKind {
    /// Every backend burnfit knows, compiled in or not.
    pub const ALL: [BackendKind; 3] = [BackendKind::Ndarray, BackendKind::Flex, BackendKind::Wgpu];

    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Parses a name written by [`BackendKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The cargo feature of burnfit that compiles this backend in.
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// Whether this build contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Wgpu => cfg!(feature = "wgpu-backend"),
        }
    }

    /// The backends compiled into this build, in [`BackendKind::ALL`] order.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_compiled()).collect()
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The physical device behind a wgpu backend, as the adapter reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdapterInfo {
    /// The adapter's name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// wgpu's device type: DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu or Other.
    pub device_type: String,
    /// The graphics API: Vulkan, Metal, Dx12, ...
    pub api: String,
    /// The largest buffer a kernel can use, in bytes (the smaller of the device's largest buffer
    /// and its largest storage binding): one tensor cannot be larger.
    pub max_buffer_bytes: u64,
}

impl AdapterInfo {
    /// A software rasterizer (lavapipe, llvmpipe, WARP) reports itself as a CPU.
    pub fn is_real_gpu(&self) -> bool {
        self.device_type != "Cpu"
    }
}

/// An opened backend: its device, ready for tensors.
#[derive(Clone, Debug)]
pub struct Backend {
    /// Which backend this is.
    pub kind: BackendKind,
    /// The device tensors are created on (without autodiff).
    pub device: Device,
    /// For wgpu: the adapter in use.
    pub adapter: Option<AdapterInfo>,
}

impl Backend {
    /// Opens the given backend, or says why it cannot be had.
    pub fn open(kind: BackendKind) -> Result<Backend> {
        require_compiled(kind, kind.is_compiled())?;
        let (device, adapter) = match kind {
            BackendKind::Ndarray => (cpu_device(kind), None),
            BackendKind::Flex => (cpu_device(kind), None),
            BackendKind::Wgpu => {
                let (device, adapter) = wgpu_device()?;
                (device, Some(adapter))
            }
        };
        Ok(Backend {
            kind,
            device,
            adapter,
        })
    }

    /// Resolves a user's choice for small work (predict, inspect): `auto` is the preferred CPU
    /// backend, and no GPU is probed.
    pub fn choose(choice: BackendChoice) -> Result<Backend> {
        Self::choose_for(choice, 0, usize::MAX)
    }

    /// Resolves a user's choice for training with `batch` samples per step: `auto` takes wgpu
    /// only for batches of at least `gpu_from` (the caller knows what pays off for its engine)
    /// and only on a real GPU (a software Vulkan device is slower than the CPU backends for
    /// this model); otherwise the preferred CPU backend.
    pub fn choose_for(choice: BackendChoice, batch: usize, gpu_from: usize) -> Result<Backend> {
        let kind = match choice {
            BackendChoice::Ndarray => BackendKind::Ndarray,
            BackendChoice::Flex => BackendKind::Flex,
            BackendChoice::Wgpu => BackendKind::Wgpu,
            BackendChoice::Auto => {
                if batch >= gpu_from
                    && BackendKind::Wgpu.is_compiled()
                    && let Ok(backend) = Backend::open(BackendKind::Wgpu)
                    && backend
                        .adapter
                        .as_ref()
                        .is_some_and(AdapterInfo::is_real_gpu)
                {
                    return Ok(backend);
                }
                preferred_cpu()?
            }
        };
        Backend::open(kind)
    }

    /// Refuses a batch whose tensors cannot fit, before anything is allocated: on wgpu one
    /// batch-sized f32 tensor must fit in a device buffer; on the CPU, `bytes_per_sample` times
    /// the batch must fit in the memory available now (`MemAvailable`).
    pub fn check_batch_fits(&self, batch: usize, bytes_per_sample: u64) -> Result<()> {
        let too_large = |needed: u64, room: u64, place: String| Error::BatchTooLarge {
            fused_would_fit: false,
            batch,
            needed_bytes: needed,
            room_bytes: room,
            place,
        };
        let batch = batch as u64;
        match &self.adapter {
            Some(adapter) => {
                let tensor = batch.saturating_mul(4);
                if tensor > adapter.max_buffer_bytes {
                    return Err(too_large(
                        tensor,
                        adapter.max_buffer_bytes,
                        format!("largest buffer of {}", adapter.name),
                    ));
                }
                // burn's kernels launch one workgroup per few samples along one axis; past
                // this, autotune's candidates exceed the device's grid and panic in cubecl.
                if batch > WGPU_AUTODIFF_MAX_BATCH {
                    return Err(Error::InvalidSetting {
                        name: "--batch",
                        value: batch.to_string(),
                        expected: "must be at most 8,388,608 for the autodiff engine on wgpu (burn's kernels outgrow the device's workgroup grid beyond); use --engine fused",
                    });
                }
            }
            None => check_host_memory(batch, bytes_per_sample)?,
        }
        Ok(())
    }

    /// A one-line description: the backend and, for wgpu, its adapter.
    pub fn describe(&self) -> String {
        match &self.adapter {
            Some(a) => format!("{} ({}, {} on {})", self.kind, a.name, a.device_type, a.api),
            None => format!("{} (cpu)", self.kind),
        }
    }
}

/// The largest batch the autodiff engine runs on wgpu: 8,388,608 measured working on lavapipe,
/// 300,000,000 failing (a matmul candidate's grid of 37.5M workgroups).
pub const WGPU_AUTODIFF_MAX_BATCH: u64 = 1 << 23;

/// Refuses `batch` × `bytes_per_sample` bytes of host memory when the system does not have them
/// available now (Linux `MemAvailable`; unchecked where that is unknown).
pub fn check_host_memory(batch: u64, bytes_per_sample: u64) -> Result<()> {
    let needed = batch.saturating_mul(bytes_per_sample);
    match crate::memory::available() {
        Some(available) if needed > available => Err(Error::BatchTooLarge {
            fused_would_fit: false,
            batch: batch as usize,
            needed_bytes: needed,
            room_bytes: available,
            place: "memory available".into(),
        }),
        _ => Ok(()),
    }
}

/// The error for a backend this build lacks, naming the cargo feature that adds it.
fn require_compiled(kind: BackendKind, compiled: bool) -> Result<()> {
    if compiled {
        Ok(())
    } else {
        Err(Error::BackendNotCompiled {
            backend: kind.name(),
            feature: kind.feature(),
        })
    }
}

/// The CPU backend `auto` falls back to: flex (ndarray's maintained successor) when compiled in,
/// else ndarray.
fn preferred_cpu() -> Result<BackendKind> {
    [BackendKind::Flex, BackendKind::Ndarray]
        .into_iter()
        .find(|k| k.is_compiled())
        .ok_or(Error::BackendNotCompiled {
            backend: "ndarray",
            feature: "ndarray",
        })
}

#[allow(deprecated, unreachable_code, unused_variables)] // Device::ndarray is deprecated but supported in 0.22
fn cpu_device(kind: BackendKind) -> Device {
    match kind {
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => Device::ndarray(),
        #[cfg(feature = "flex")]
        BackendKind::Flex => Device::flex(),
        _ => unreachable!("cpu_device is only called for compiled-in CPU backends"),
    }
}

/// The wgpu runtime can be initialised once per process; the outcome is kept and shared.
#[cfg(feature = "wgpu-backend")]
fn wgpu_device() -> Result<(Device, AdapterInfo)> {
    use std::sync::OnceLock;
    static WGPU: OnceLock<std::result::Result<(Device, AdapterInfo), String>> = OnceLock::new();
    let opened = WGPU.get_or_init(|| {
        // Some drivers panic inside wgpu instead of reporting an error: turn that into one too.
        let attempt = std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup());
        match attempt {
            Ok(Ok((device, setup))) => {
                let info = setup.adapter.get_info();
                Ok((
                    device,
                    AdapterInfo {
                        name: info.name,
                        device_type: format!("{:?}", info.device_type),
                        api: format!("{:?}", info.backend),
                        // A kernel binds its tensors as storage buffers: the binding's limit
                        // counts too (lavapipe: 128 MiB, where a buffer may take 2 GiB).
                        max_buffer_bytes: setup
                            .device
                            .limits()
                            .max_buffer_size
                            .min(setup.device.limits().max_storage_buffer_binding_size),
                    },
                ))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the wgpu runtime panicked while opening the adapter".to_string()),
        }
    });
    opened.clone().map_err(Error::NoWgpuAdapter)
}

#[cfg(not(feature = "wgpu-backend"))]
fn wgpu_device() -> Result<(Device, AdapterInfo)> {
    Err(Error::BackendNotCompiled {
        backend: "wgpu",
        feature: "wgpu",
    })
}

/// What `burnfit backends` reports for one compiled-in backend.
#[derive(Clone, Debug, Serialize)]
pub struct BackendStatus {
    /// The backend.
    pub kind: BackendKind,
    /// Whether a device could be opened and ran a small computation.
    pub working: bool,
    /// For wgpu: the adapter.
    pub adapter: Option<AdapterInfo>,
    /// Why it is not working, when it is not.
    pub problem: Option<String>,
}

/// Opens every compiled-in backend and runs a tiny computation on it.
pub fn probe_all() -> Vec<BackendStatus> {
    BackendKind::compiled()
        .into_iter()
        .map(
            |kind| match Backend::open(kind).and_then(|b| smoke_test(&b).map(|()| b)) {
                Ok(backend) => BackendStatus {
                    kind,
                    working: true,
                    adapter: backend.adapter,
                    problem: None,
                },
                Err(e) => BackendStatus {
                    kind,
                    working: false,
                    adapter: None,
                    problem: Some(e.to_string()),
                },
            },
        )
        .collect()
}

/// 1 + 2 computed on the device and read back.
fn smoke_test(backend: &Backend) -> Result<()> {
    use burn::tensor::Tensor;
    let sum = Tensor::<1>::from_floats([1.0, 2.0], &backend.device).sum();
    let value: f32 = sum.try_into_scalar().map_err(|e| Error::Device {
        backend: backend.kind.name(),
        message: format!("{e:?}"),
    })?;
    if value == 3.0 {
        Ok(())
    } else {
        Err(Error::Device {
            backend: backend.kind.name(),
            message: format!("1 + 2 gave {value}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in BackendKind::ALL {
            assert_eq!(BackendKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(BackendKind::from_name("cuda"), None);
    }

    #[test]
    fn missing_backends_name_their_feature() {
        for kind in BackendKind::ALL {
            let err = require_compiled(kind, false).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let message = err.to_string();
            assert!(
                message.contains(&format!("--features {}", kind.name())),
                "{message}"
            );
            assert!(message.contains(&format!("`{}`", kind.name())), "{message}");
            require_compiled(kind, true).unwrap();
        }
        for kind in BackendKind::ALL.into_iter().filter(|k| !k.is_compiled()) {
            assert!(matches!(
                Backend::open(kind),
                Err(Error::BackendNotCompiled { .. })
            ));
        }
    }

    #[test]
    fn compiled_cpu_backends_open_and_compute() {
        for kind in [BackendKind::Ndarray, BackendKind::Flex] {
            if kind.is_compiled() {
                smoke_test(&Backend::open(kind).unwrap()).unwrap();
            }
        }
    }
}
