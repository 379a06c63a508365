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
#[doc(hidden)]
pub mod autograd_reference;
pub mod backend;
pub mod bench;
pub mod checkpoint;
#[doc(hidden)]
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod console;
pub mod data;
pub mod engine;
pub mod error;
pub mod evaluate;
#[doc(hidden)]
pub mod file_lock;
#[doc(hidden)]
pub mod file_roles;
pub mod fit_quality;
pub mod fused;
pub mod fused_step;
pub mod host;
#[doc(hidden)]
pub mod input;
pub mod loss;
#[doc(hidden)]
pub mod memory;
pub mod metrics_log;
pub mod model;
pub mod ols;
pub mod optim;
pub mod plan;
pub mod plot;
pub mod prefetch;
#[doc(hidden)]
pub mod progress;
pub mod report;
pub mod ridge;
pub mod rng;
pub mod session;
#[doc(hidden)]
pub mod signals;
pub mod tensorboard;
pub mod train;

// The library's surface: configure a run, open or train it on a backend, save and load its
// checkpoint, predict. The modules above hold the rest; the hidden ones serve the command line.
pub use backend::{Backend, BackendChoice, BackendKind};
pub use checkpoint::{Checkpoint, Format};
pub use config::{ModelKind, TableConfig, Task, TrainingConfig};
pub use engine::{Engine, EngineKind, LossPoint, Observer, RunReport};
pub use error::{Error, Result};
pub use fused::FusedTrainer;
pub use model::{Activation, ModelSpec};
pub use plan::{Overrides, TrainPlan, TrainRequest};
pub use session::{TrainingReport, open_engine, open_engine_with, train, train_with};
pub use train::Trainer;
