//! The same workload on the `autograd` crate (2.0.0-rc3), the system burnfit's workload comes
//! from: one neuron, MSE, its own Adam, a fresh batch every step. Used as the reference row of
//! `burnfit bench` (cargo feature `autograd-ref`).
//!
//! The crate's random graph ops reuse one fixed seed, so batches drawn inside its graph would be
//! the same every step; they are drawn here on the host from burnfit's Philox stream and fed in
//! instead, so this row trains on exactly the data burnfit does.

use std::time::{Duration, Instant};

use ag::ndarray::Array2;
use ag::optimizers::{Adam, Optimizer};
use ag::prelude::*;
use ag::tensor_ops as T;
use autograd as ag;

use crate::checkpoint::autograd_json::ADAM_NAMESPACE;
use crate::config::TrainingConfig;

/// What an autograd run produced.
#[derive(Clone, Debug)]
pub struct AutogradRun {
    /// Final weight.
    pub w: f32,
    /// Final bias.
    pub b: f32,
    /// Loss of the last step's batch, before its update.
    pub final_loss: f32,
    /// Wall time of the first step (graph construction included).
    pub first_step: Duration,
    /// Wall time of all steps.
    pub total: Duration,
}

/// A batch of the noisy line, drawn on the host from burnfit's one data stream
/// ([`crate::rng::philox`]): the batches burnfit's engines train on.
pub fn host_batch(config: &TrainingConfig, step: u64) -> (Array2<f32>, Array2<f32>) {
    let (x, y) = config.line_stream().batch(step, config.batch);
    let shape = (config.batch, 1);
    (
        Array2::from_shape_vec(shape, x).expect("batch values"),
        Array2::from_shape_vec(shape, y).expect("batch values"),
    )
}

/// Trains `config.steps` steps with the autograd crate. `w0` is the initial weight (burnfit's
/// models start from a seed-derived one; pass it to start from the same point), b starts at 0.
pub fn train_autograd(config: &TrainingConfig, w0: f32) -> AutogradRun {
    train_autograd_and_save(config, w0, None).expect("a run that saves nothing cannot fail")
}

/// [`train_autograd`], then the crate's own `VariableEnvironment::save` to `results` (its
/// results.json), as the autograd seed program ends.
pub fn train_autograd_and_save(
    config: &TrainingConfig,
    w0: f32,
    results: Option<&std::path::Path>,
) -> Result<AutogradRun, String> {
    let mut env = ag::VariableEnvironment::<f32>::new();
    let w_id = env.name("w").set(ag::ndarray::arr2(&[[w0]]));
    let b_id = env.name("b").set(ag::ndarray::arr2(&[[0.0f32]]));
    let adam = Adam::new(
        config.lr,
        config.epsilon,
        config.beta1,
        config.beta2,
        [w_id, b_id],
        &mut env,
        ADAM_NAMESPACE,
    );
    let start = Instant::now();
    let mut first_step = Duration::ZERO;
    let mut final_loss = f32::NAN;
    for step in 1..=config.steps {
        let (xb, yb) = host_batch(config, step);
        let last = step == config.steps;
        env.run(|c| {
            let w = c.variable(w_id);
            let b = c.variable(b_id);
            let x = c.placeholder("x", &[-1, 1]);
            let y = c.placeholder("y", &[-1, 1]);
            let z = T::matmul(x, w) + b;
            let loss = T::reduce_mean(T::square(z - y), &[0, 1], false);
            if last {
                let value = c
                    .evaluator()
                    .push(loss)
                    .feed(x, xb.view())
                    .feed(y, yb.view())
                    .run();
                if let Some(Ok(array)) = value.first() {
                    final_loss = array.iter().copied().next().unwrap_or(f32::NAN);
                }
            }
            let grads = T::grad(&[loss], &[w, b]);
            let mut feeder = ag::Feeder::new();
            feeder.push(x, xb.view()).push(y, yb.view());
            adam.update(&[w, b], &grads, c, feeder);
        });
        if step == 1 {
            first_step = start.elapsed();
        }
    }
    if let Some(path) = results {
        env.save(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let total = start.elapsed();
    let read = |id| {
        env.get_array_by_id(id)
            .expect("registered")
            .borrow()
            .iter()
            .copied()
            .next()
            .unwrap_or(f32::NAN)
    };
    Ok(AutogradRun {
        w: read(w_id),
        b: read(b_id),
        final_loss,
        first_step,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_batches_follow_the_line_and_change_every_step() {
        let config = TrainingConfig {
            batch: 20_000,
            ..Default::default()
        };
        let (x, y) = host_batch(&config, 1);
        assert!(x.iter().all(|v| (-10.0..10.0).contains(v)));
        let r: Vec<f32> = x
            .iter()
            .zip(y.iter())
            .map(|(x, y)| y - (2.5 * x - 1.0))
            .collect();
        let mean = r.iter().sum::<f32>() / r.len() as f32;
        let std = (r.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / r.len() as f32).sqrt();
        assert!(
            mean.abs() < 0.02 && (std - 0.5).abs() < 0.02,
            "mean {mean} std {std}"
        );
        assert_eq!(host_batch(&config, 1).0, x);
        assert_ne!(host_batch(&config, 2).0, x);
    }

    #[test]
    fn the_autograd_reference_converges_with_fresh_batches() {
        let run = train_autograd(&TrainingConfig::default(), 0.3);
        assert!((run.w - 2.5).abs() < 0.05, "w = {}", run.w);
        assert!((run.b + 1.0).abs() < 0.05, "b = {}", run.b);
        assert!(
            (0.1..0.45).contains(&run.final_loss),
            "loss {}",
            run.final_loss
        );
    }
}
