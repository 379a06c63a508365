//! The autodiff engine: burn's tensors and autodiff run the step — fresh batch, forward, MSE,
//! backward, Adam; the loss is read back from the device only on logging steps, because every
//! read-back waits for the device.

use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use crate::backend::Backend;
use crate::checkpoint::{AdamSnapshot, Checkpoint, Metadata, NamedTensor, RunRecord};
use crate::config::TrainingConfig;
use crate::data::{DataSource, PreparedTable};
pub use crate::engine::{Chunk, Engine, EngineKind, Flow, LossPoint, Observer, RunReport};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::{ModelSpec, Network};
use crate::optim::{Moments, Optimizer};

/// Memory a step takes per sample of the batch: x, y, z, z − y, its square, the gradient of z
/// and the copies autodiff keeps — about a dozen f32 tensors of the batch, rounded up (a
/// multi-feature or hidden-layer model takes more: see [`Trainer::bytes_per_sample`]).
pub const BYTES_PER_SAMPLE: u64 = 64;

/// A model, its optimizer state and its place in the data stream, on one backend.
pub struct Trainer {
    config: TrainingConfig,
    backend: Backend,
    device: Device,
    model: Network,
    moments: Vec<Moments>,
    optimizer: Optimizer,
    data: DataSource,
    table: Option<Arc<PreparedTable>>,
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
    /// A fresh model for `config` on `backend` (a `--data` table is read here).
    pub fn new(config: TrainingConfig, backend: Backend) -> Result<Self> {
        Self::start(config, backend, None, None)
    }

    /// Continues from a checkpoint: its parameters, Adam state and step count. `config` decides
    /// everything else, including the data stream.
    pub fn resume(
        config: TrainingConfig,
        backend: Backend,
        checkpoint: &Checkpoint,
    ) -> Result<Self> {
        Self::start(config, backend, None, Some(checkpoint))
    }

    /// A fresh or resumed trainer. `table` is the config's `--data` table when the caller has
    /// read it already (it is read here otherwise).
    pub fn start(
        config: TrainingConfig,
        backend: Backend,
        table: Option<Arc<PreparedTable>>,
        resume: Option<&Checkpoint>,
    ) -> Result<Self> {
        config.validate()?;
        let table = crate::engine::table_for(&config, table)?;
        let spec = config.model_spec(table.as_ref().map_or(1, |t| t.d()));
        spec.validate()
            .map_err(|message| Error::InvalidModel { message })?;
        // A table's step takes at most all its training rows, whatever --batch says.
        let batch = table
            .as_ref()
            .map_or(config.batch, |t| config.batch.min(t.train_rows()));
        backend
            .check_batch_fits(batch, Self::bytes_per_sample(&spec))
            .map_err(|error| match error {
                // Suggested only where it would work: the fused engine's one model and task.
                Error::BatchTooLarge {
                    batch,
                    needed_bytes,
                    room_bytes,
                    place,
                    ..
                } => Error::BatchTooLarge {
                    fused_would_fit: config.model == crate::config::ModelKind::Linear
                        && (config.data.is_some() || config.task == crate::config::Task::Line),
                    batch,
                    needed_bytes,
                    room_bytes,
                    place,
                },
                other => other,
            })?;
        let device = backend.device.clone().autodiff();
        let inner = backend.device.clone();
        let params = crate::engine::starting_params(&spec, config.seed, table.as_deref(), resume)?;
        let mut model = Network::from_host(&spec, &params, &device);
        model.params = model.params.into_iter().map(Tensor::require_grad).collect();
        let zeros = || {
            model
                .params
                .iter()
                .map(|p| Moments::zeros_like(&p.clone().inner()))
                .collect()
        };
        // Without Adam's state (a SafeTensors file) Adam restarts: zero moments, t from 1.
        let (moments, updates) = match resume.and_then(|c| c.adam.as_ref()) {
            Some(adam) => (
                adam.moments
                    .iter()
                    .map(|(m, v)| Moments {
                        m: m.to_tensor(&inner),
                        v: v.to_tensor(&inner),
                    })
                    .collect(),
                adam.updates,
            ),
            None => (zeros(), 0),
        };
        let data = match &table {
            Some(table) => DataSource::table(table, &config, &device),
            None => DataSource::synthetic(&config),
        };
        let sync_every_step = backend.adapter.as_ref().is_some_and(|a| !a.is_real_gpu());
        Ok(Self {
            optimizer: config.optimizer(),
            step: resume.map_or(0, Checkpoint::step),
            last_loss: resume
                .and_then(|c| c.meta.as_ref())
                .and_then(|m| m.final_loss),
            config,
            backend,
            device,
            model,
            moments,
            data,
            table,
            updates,
            sync_every_step,
        })
    }

    /// Memory a step takes per sample: [`BYTES_PER_SAMPLE`] for the one-input linear model,
    /// more for wider inputs and hidden layers (each activation is kept for the backward pass).
    pub fn bytes_per_sample(spec: &ModelSpec) -> u64 {
        let widths: u64 = spec.widths().iter().map(|w| *w as u64).sum();
        BYTES_PER_SAMPLE.max(16 * widths)
    }

    /// The model as it stands (in the scaled space for a standardized `--data` run).
    pub fn model(&self) -> &Network {
        &self.model
    }

    /// Runs `steps` steps; waits for the device when `sync`, and reads the last one's loss back
    /// when `read_loss` (the only read-back: the device runs ahead of the host otherwise).
    fn run_steps(&mut self, steps: u64, read_loss: bool, sync: bool) -> Result<Chunk> {
        let mut loss = None;
        for _ in 0..steps {
            let step = self.step + 1;
            // The last step's loss is dropped before this step, not kept through it: burn's
            // fusion then builds the same kernels whatever the chunk size.
            drop(loss.take());
            loss = Some(self.train_step(step)?);
            if self.sync_every_step {
                Engine::sync(self)?;
            }
            self.step = step;
        }
        if sync {
            Engine::sync(self)?;
        }
        let (Some(loss), true) = (loss, read_loss) else {
            return Ok(Chunk {
                last_loss: None,
                diverged: None,
            });
        };
        let trained = self.read_loss(loss)?;
        // Shown in the target's units (beyond f32's range for targets past ~1e19, which is not
        // divergence: training runs on the scaled target).
        let loss = self.config.loss;
        let shown = self
            .table
            .as_ref()
            .map_or(trained, |t| t.shown_loss(trained, loss));
        self.last_loss = Some(shown);
        Ok(Chunk {
            last_loss: Some(shown),
            diverged: (!trained.is_finite()).then_some((self.step, shown)),
        })
    }

    /// One step; returns the batch's loss, still on the device (an error only when an
    /// out-of-core table's cache cannot be read).
    fn train_step(&mut self, step: u64) -> Result<Tensor<1>> {
        let (x, y) = self.data.batch(step, &self.backend, &self.device)?;
        let delta = self.table.as_ref().map_or(self.config.huber_delta, |t| {
            t.training_delta(self.config.huber_delta)
        });
        let loss = self.config.loss.of_tensors(self.model.forward(x), y, delta);
        let loss_value = loss.clone().inner();
        // The ridge penalty joins the objective, not the loss shown.
        let objective = match self.config.l2 {
            0.0 => loss,
            l2 => {
                let penalty = self
                    .model
                    .params
                    .iter()
                    .step_by(2)
                    .map(|w| w.clone().square().sum())
                    .reduce(|a, b| a + b)
                    .expect("a model has weights");
                loss + penalty.mul_scalar(l2)
            }
        };
        let mut grads = objective.backward();
        self.updates += 1;
        let moments = std::mem::take(&mut self.moments);
        let mut params = Vec::with_capacity(moments.len());
        for (i, (param, moments)) in self.model.params.iter().zip(moments).enumerate() {
            // Parameters alternate weight, bias: AdamW decays the weights only.
            let weight = i % 2 == 0;
            let (updated, moments) = self.update(param, &mut grads, moments, self.updates, weight);
            params.push(updated);
            self.moments.push(moments);
        }
        // Empty now: every gradient was taken out above, in parameter order.
        drop(grads);
        self.model.params = params;
        Ok(loss_value)
    }

    /// The optimizer's update of one parameter. The gradient is taken out of `grads` (not cloned): the
    /// container is a hash map, and dropping the gradients left in it would free them on the
    /// device in an order that changes from step to step. burn's fusion caches its plans by the
    /// exact sequence of operations, frees included, so a changing order made it search the
    /// step's ~100-operation tail afresh every step (on wgpu: 10 of the MLP's 11 ms per step
    /// on lavapipe; see shaders-notes.md, "The MLP's step on wgpu").
    fn update(
        &self,
        param: &Tensor<2>,
        grads: &mut burn::tensor::Gradients,
        moments: Moments,
        t: u64,
        weight: bool,
    ) -> (Tensor<2>, Moments) {
        let grad = param
            .grad_remove(grads)
            .expect("every parameter takes part in the loss");
        let (updated, moments) =
            self.optimizer
                .update(param.clone().inner(), grad, moments, t, weight);
        (Tensor::from_inner(updated).require_grad(), moments)
    }

    fn read_loss(&self, loss: Tensor<1>) -> Result<f32> {
        loss.try_into_scalar::<f32>()
            .map_err(|e| self.device_error(format!("{e:?}")))
    }

    fn device_error(&self, message: String) -> Error {
        Error::Device {
            backend: self.backend.kind.name(),
            message,
        }
    }

    /// The parameters as the model trains them (in the scaled space for a standardized table).
    fn scaled_params(&self) -> Result<Vec<HostTensor>> {
        Ok(self.model.to_host()?.into_iter().map(|p| p.value).collect())
    }

    /// The parameters in the data's units, named (no optimizer state read back).
    pub fn model_in_data_units(&self) -> Result<(ModelSpec, Vec<NamedTensor>)> {
        let mut params = self.scaled_params()?;
        if let Some(table) = &self.table {
            table.to_data_units(&mut params);
        }
        let named = self
            .model
            .spec
            .param_names()
            .into_iter()
            .zip(params)
            .map(|(name, value)| NamedTensor { name, value })
            .collect();
        Ok((self.model.spec.clone(), named))
    }

    /// The full state on the host, ready to be saved. Reads the device back.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let moments = self
            .moments
            .iter()
            .map(|m| -> Result<(HostTensor, HostTensor)> {
                Ok((
                    HostTensor::from_tensor(m.m.clone())?,
                    HostTensor::from_tensor(m.v.clone())?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut params = self.scaled_params()?;
        let mut record = self.table.as_ref().map(|t| t.record());
        if let (Some(table), Some(record)) = (&self.table, &mut record) {
            record.training_space = table.training_space(&self.model.spec.param_names(), &params);
            table.to_data_units(&mut params);
        }
        Ok(Checkpoint {
            spec: self.model.spec.clone(),
            params,
            adam: Some(AdamSnapshot {
                updates: self.updates,
                moments,
            }),
            meta: Some(Metadata::from(RunRecord {
                config: &self.config,
                backend: self.backend.kind.name(),
                engine: EngineKind::Autodiff.name(),
                step: self.step,
                adam_updates: self.updates,
                final_loss: self.last_loss,
                data: record,
            })),
        })
    }
}

impl Engine for Trainer {
    fn kind(&self) -> EngineKind {
        EngineKind::Autodiff
    }

    fn step(&self) -> u64 {
        self.step
    }

    fn config(&self) -> &TrainingConfig {
        &self.config
    }

    fn backend(&self) -> &Backend {
        &self.backend
    }

    /// One step a chunk: the host takes part in every step anyway.
    fn max_chunk_steps(&self) -> u64 {
        1
    }

    fn run_chunk(&mut self, steps: u64, read_loss: bool, sync: bool) -> Result<Chunk> {
        self.run_steps(steps, read_loss, sync)
    }

    fn sync(&self) -> Result<()> {
        self.device
            .sync()
            .map_err(|e| self.device_error(format!("{e:?}")))
    }

    fn as_dyn(&self) -> &dyn Engine {
        self
    }

    fn checkpoint(&self) -> Result<Checkpoint> {
        Trainer::checkpoint(self)
    }

    fn table(&self) -> Option<&Arc<PreparedTable>> {
        self.table.as_ref()
    }

    fn model_in_data_units(&self) -> Result<(ModelSpec, Vec<NamedTensor>)> {
        Trainer::model_in_data_units(self)
    }
}
