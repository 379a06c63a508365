//! burnfit trains regression models with Adam on burn's ndarray, flex or wgpu backend — the
//! one-neuron linear regression z = x·w + b of the autograd crate's example on a noisy line, a
//! linear model of any CSV table (checked against closed-form least squares), or a multi-layer
//! perceptron — and saves checkpoints the autograd crate, Python and burn programs can load.
//!
//! ```
//! use burnfit::{Backend, BackendKind, TrainingConfig, train};
//!
//! let backend = Backend::open(BackendKind::compiled()[0])?;
//! let report = train(&TrainingConfig::default(), backend, |_| {})?;
//! assert!((report.final_w() - 2.5).abs() < 0.05 && (report.final_b() + 1.0).abs() < 0.05);
//! # Ok::<(), burnfit::Error>(())
//! ```
#![warn(missing_docs)]

#[cfg(feature = "autograd-ref")]
pub mod autograd_reference;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod console;
pub mod data;
pub mod engine;
pub mod error;
pub mod file_lock;
pub mod file_roles;
pub mod fit_quality;
pub mod fused;
pub mod fused_step;
pub mod host;
pub mod input;
pub mod memory;
pub mod metrics_log;
pub mod model;
pub mod ols;
pub mod optim;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod report;
pub mod rng;
pub mod session;
pub mod signals;
pub mod train;

pub use backend::{Backend, BackendChoice, BackendKind};
pub use checkpoint::Checkpoint;
pub use config::TrainingConfig;
pub use engine::{Engine, EngineKind, LossPoint};
pub use error::{Error, Result};
pub use fused::FusedTrainer;
pub use session::{TrainingReport, open_engine, train, train_with};
pub use train::Trainer;
