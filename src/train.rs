//! The autodiff engine: burn's tensors and autodiff run the step — fresh batch, forward, MSE,
//! backward, Adam; the loss is read back from the device only on logging steps, because every
//! read-back waits for the device.

use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor};

use crate::backend::Backend;
use crate::checkpoint::{AdamSnapshot, Checkpoint, Metadata, RunRecord};
use crate::config::TrainingConfig;
use crate::data::LineData;
pub use crate::engine::{Engine, EngineKind, Flow, LossPoint, Observer, RunReport};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::{LinearRegression, LinearRegressionConfig, mse};
use crate::optim::{Adam, Moments};

/// Memory a step takes per sample of the batch: x, y, z, z − y, its square, the gradient of z
/// and the copies autodiff keeps — about a dozen f32 tensors of the batch, rounded up.
pub const BYTES_PER_SAMPLE: u64 = 64;

/// A model, its optimizer state and its place in the data stream, on one backend.
pub struct Trainer {
    config: TrainingConfig,
    backend: Backend,
    device: Device,
    model: LinearRegression,
    moments: [Moments; 2],
    adam: Adam,
    data: LineData,
    step: u64,
    updates: u64,
    last_loss: Option<f32>,
    /// Wait for the device after every step: on a software Vulkan device (lavapipe) a step
    /// then takes a third of the time (1.0 vs 3.2 ms at batch 64, 9.4 vs 16.7 ms at 65,536,
    /// measured), as buffers are reused instead of piling up behind an ever longer queue. Real
    /// GPUs keep queueing steps ahead (not measured yet with this data path).
    sync_every_step: bool,
}

impl Trainer {
    /// A fresh model for `config` on `backend`.
    pub fn new(config: TrainingConfig, backend: Backend) -> Result<Self> {
        config.validate()?;
        backend.check_batch_fits(config.batch, BYTES_PER_SAMPLE)?;
        let device = backend.device.clone().autodiff();
        let model = LinearRegressionConfig::new().init(config.seed, &device);
        let moments = [
            Moments::zeros_like(&model.w.val().inner()),
            Moments::zeros_like(&model.b.val().inner()),
        ];
        Ok(Self::assemble(config, backend, device, model, moments, 0))
    }

    /// Continues from a checkpoint: its parameters, Adam state and step count. `config` decides
    /// everything else, including the data stream.
    pub fn resume(
        config: TrainingConfig,
        backend: Backend,
        checkpoint: &Checkpoint,
    ) -> Result<Self> {
        config.validate()?;
        backend.check_batch_fits(config.batch, BYTES_PER_SAMPLE)?;
        let device = backend.device.clone().autodiff();
        let model = LinearRegression::from_host(&checkpoint.params, &device);
        let inner = backend.device.clone();
        // Without Adam's state (a SafeTensors file) Adam restarts: zero moments, t from 1.
        let (moments, updates) = match &checkpoint.adam {
            Some(adam) => (
                adam.moments.clone().map(|(m, v)| Moments {
                    m: m.to_tensor(&inner),
                    v: v.to_tensor(&inner),
                }),
                adam.updates,
            ),
            None => (
                [
                    Moments::zeros_like(&model.w.val().inner()),
                    Moments::zeros_like(&model.b.val().inner()),
                ],
                0,
            ),
        };
        let step = checkpoint.step();
        let mut trainer = Self::assemble(config, backend, device, model, moments, step);
        trainer.updates = updates;
        trainer.last_loss = checkpoint.meta.as_ref().and_then(|m| m.final_loss);
        Ok(trainer)
    }

    fn assemble(
        config: TrainingConfig,
        backend: Backend,
        device: Device,
        model: LinearRegression,
        moments: [Moments; 2],
        step: u64,
    ) -> Self {
        let sync_every_step = backend.adapter.as_ref().is_some_and(|a| !a.is_real_gpu());
        Self {
            adam: Adam::new(&config),
            data: LineData::new(&config),
            config,
            backend,
            device,
            model,
            moments,
            step,
            updates: step,
            last_loss: None,
            sync_every_step,
        }
    }

    /// Steps taken so far, across resumes.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The backend this trainer runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The resolved config.
    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// The model as it stands.
    pub fn model(&self) -> &LinearRegression {
        &self.model
    }

    /// Runs `steps` more steps. The observer sees each loss as it is read back (every
    /// `log_every`-th step and the last one) and the trainer after every step.
    /// Stops with [`Error::Diverged`] when a loss read back is NaN or infinite.
    pub fn run(&mut self, steps: u64, observer: &mut dyn Observer) -> Result<RunReport> {
        let start = Instant::now();
        let mut first_step = Duration::ZERO;
        let mut losses = Vec::new();
        let first = self.step + 1;
        let last = self.step + steps;
        let mut stopped = false;
        while self.step < last {
            let step = self.step + 1;
            let loss = self.train_step(step);
            if self.sync_every_step {
                self.sync()?;
            }
            self.step = step;
            if step == first {
                self.sync()?;
                first_step = start.elapsed();
            }
            if step.is_multiple_of(self.config.log_every) || step == last {
                let loss = self.read_loss(loss)?;
                let point = LossPoint { step, loss };
                observer.on_loss(point);
                losses.push(point);
                self.last_loss = Some(loss);
                if !loss.is_finite() {
                    return Err(Error::Diverged {
                        step,
                        loss,
                        from_the_start: step == 1,
                    });
                }
            }
            if observer.after_step(self)? == Flow::Stop {
                stopped = true;
                break;
            }
        }
        self.sync()?;
        Ok(RunReport {
            losses,
            first_step,
            total: start.elapsed(),
            steps: self.step + 1 - first,
            stopped,
        })
    }

    /// One step; returns the batch's loss, still on the device.
    fn train_step(&mut self, step: u64) -> Tensor<1> {
        let (x, y) = self.data.batch(step, &self.backend, &self.device);
        let loss = mse(self.model.forward(x), y);
        let loss_value = loss.clone().inner();
        let grads = loss.backward();
        let [mw, mb] = self.moments.clone();
        self.updates += 1;
        let (w, mw) = self.update(&self.model.w.val(), &grads, mw, self.updates);
        let (b, mb) = self.update(&self.model.b.val(), &grads, mb, self.updates);
        self.model.w = self.model.w.clone().map(|_| w);
        self.model.b = self.model.b.clone().map(|_| b);
        self.moments = [mw, mb];
        loss_value
    }

    fn update(
        &self,
        param: &Tensor<2>,
        grads: &burn::tensor::Gradients,
        moments: Moments,
        t: u64,
    ) -> (Tensor<2>, Moments) {
        let grad = param
            .grad(grads)
            .expect("every parameter takes part in the loss");
        let (updated, moments) = self.adam.update(param.clone().inner(), grad, moments, t);
        (Tensor::from_inner(updated).require_grad(), moments)
    }

    fn read_loss(&self, loss: Tensor<1>) -> Result<f32> {
        loss.try_into_scalar::<f32>()
            .map_err(|e| self.device_error(format!("{e:?}")))
    }

    fn sync(&self) -> Result<()> {
        self.device
            .sync()
            .map_err(|e| self.device_error(format!("{e:?}")))
    }

    fn device_error(&self, message: String) -> Error {
        Error::Device {
            backend: self.backend.kind.name(),
            message,
        }
    }

    /// The full state on the host, ready to be saved. Reads the device back.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let moments = self
            .moments
            .clone()
            .map(|m| -> Result<(HostTensor, HostTensor)> {
                Ok((HostTensor::from_tensor(m.m)?, HostTensor::from_tensor(m.v)?))
            });
        let [mw, mb] = moments;
        Ok(Checkpoint {
            params: self.model.to_host()?,
            adam: Some(AdamSnapshot {
                updates: self.updates,
                moments: [mw?, mb?],
            }),
            meta: Some(Metadata::from(RunRecord {
                config: &self.config,
                backend: self.backend.kind.name(),
                engine: EngineKind::Autodiff.name(),
                step: self.step,
                adam_updates: self.updates,
                final_loss: self.last_loss,
            })),
        })
    }
}

impl Engine for Trainer {
    fn kind(&self) -> EngineKind {
        EngineKind::Autodiff
    }

    fn step(&self) -> u64 {
        Trainer::step(self)
    }

    fn config(&self) -> &TrainingConfig {
        Trainer::config(self)
    }

    fn backend(&self) -> &Backend {
        Trainer::backend(self)
    }

    fn run(&mut self, steps: u64, observer: &mut dyn Observer) -> Result<RunReport> {
        Trainer::run(self, steps, observer)
    }

    fn checkpoint(&self) -> Result<Checkpoint> {
        Trainer::checkpoint(self)
    }
}

/// The result of [`train`]: the run and the final state.
#[derive(Clone, Debug)]
pub struct TrainingReport {
    /// Losses and timings.
    pub run: RunReport,
    /// The final parameters, Adam state and metadata.
    pub checkpoint: Checkpoint,
}

impl TrainingReport {
    /// The final w (the model is one neuron).
    pub fn final_w(&self) -> f32 {
        self.checkpoint.params[0].data[0]
    }

    /// The final b.
    pub fn final_b(&self) -> f32 {
        self.checkpoint.params[1].data[0]
    }
}

/// Trains a fresh model for `config.steps` steps on `backend` with the autodiff engine;
/// `on_loss` sees each loss read back.
pub fn train(
    config: &TrainingConfig,
    backend: Backend,
    on_loss: impl FnMut(LossPoint),
) -> Result<TrainingReport> {
    train_with(EngineKind::Autodiff, config, backend, on_loss)
}

/// Trains a fresh model for `config.steps` steps on `backend` with the given engine.
pub fn train_with(
    engine: EngineKind,
    config: &TrainingConfig,
    backend: Backend,
    mut on_loss: impl FnMut(LossPoint),
) -> Result<TrainingReport> {
    let mut trainer = engine.open(config.clone(), backend, None)?;
    let run = trainer.run(config.steps, &mut on_loss)?;
    Ok(TrainingReport {
        run,
        checkpoint: trainer.checkpoint()?,
    })
}
