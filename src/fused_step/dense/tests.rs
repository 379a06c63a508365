use super::*;

/// A batch of `rows` rows of `d` inputs, and targets, from a fixed formula.
fn batch(rows: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..rows * d)
        .map(|i| ((i as f32) * 0.731).sin() * 2.0)
        .collect();
    let y = (0..rows)
        .map(|r| (x[r * d..(r + 1) * d].iter().sum::<f32>()).cos())
        .collect();
    (x, y)
}

/// The loss and gradients by plain backpropagation in f64, unpadded, in parameter order.
fn reference(
    spec: &ModelSpec,
    params: &[HostTensor],
    x: &[f32],
    y: &[f32],
) -> (f64, Vec<Vec<f64>>) {
    let widths = spec.widths();
    let layers = widths.len() - 1;
    let rows = y.len();
    let mut grads: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.data.len()]).collect();
    let mut loss = 0.0;
    for r in 0..rows {
        let mut acts: Vec<Vec<f64>> = vec![
            x[r * spec.d_in..(r + 1) * spec.d_in]
                .iter()
                .map(|v| f64::from(*v))
                .collect(),
        ];
        for l in 0..layers {
            let (w, b) = (&params[2 * l].data, &params[2 * l + 1].data);
            let (fan_in, fan_out) = (widths[l], widths[l + 1]);
            let mut z: Vec<f64> = (0..fan_out).map(|j| f64::from(b[j])).collect();
            for k in 0..fan_in {
                for j in 0..fan_out {
                    z[j] += acts[l][k] * f64::from(w[k * fan_out + j]);
                }
            }
            if l + 1 < layers {
                z.iter_mut().for_each(|z| *z = spec.activation.apply(*z));
            }
            acts.push(z);
        }
        let e = acts[layers][0] - f64::from(y[r]);
        loss += e * e;
        let mut delta = vec![2.0 * e / rows as f64];
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (widths[l], widths[l + 1]);
            for k in 0..fan_in {
                for j in 0..fan_out {
                    grads[2 * l][k * fan_out + j] += acts[l][k] * delta[j];
                }
            }
            for j in 0..fan_out {
                grads[2 * l + 1][j] += delta[j];
            }
            if l > 0 {
                let w = &params[2 * l].data;
                delta = (0..fan_in)
                    .map(|k| {
                        let back: f64 = (0..fan_out)
                            .map(|j| f64::from(w[k * fan_out + j]) * delta[j])
                            .sum();
                        let a = acts[l][k];
                        back * match spec.activation {
                            Activation::Tanh => 1.0 - a * a,
                            Activation::Relu => f64::from(u8::from(a > 0.0)),
                        }
                    })
                    .collect();
            }
        }
    }
    (loss / rows as f64, grads)
}

fn specs() -> Vec<ModelSpec> {
    vec![
        ModelSpec::linear(3),
        ModelSpec {
            d_in: 1,
            hidden: vec![64, 64],
            activation: Activation::Tanh,
        },
        ModelSpec {
            d_in: 5,
            hidden: vec![7, 33],
            activation: Activation::Relu,
        },
        ModelSpec {
            d_in: 2,
            hidden: vec![20],
            activation: Activation::Tanh,
        },
    ]
}

#[test]
fn loss_and_gradients_match_plain_backpropagation() {
    for spec in specs() {
        let params = spec.init(11);
        let mut step = DenseStep::new(&spec, &params, None, Loss::default());
        // 300 rows: two groups, the second with a short last block.
        let (x, y) = batch(300, spec.d_in);
        let loss = step.loss_and_gradients(&x, &y, 1);
        let (expected_loss, expected) = reference(&spec, &params, &x, &y);
        assert!(
            (f64::from(loss) - expected_loss).abs() <= 1e-5 * expected_loss,
            "{spec:?}: {loss} vs {expected_loss}"
        );
        let got = step.layout.unpack(&step.grads[0]);
        for (g, e) in got.iter().zip(&expected) {
            let scale = e.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            for (g, e) in g.data.iter().zip(e) {
                assert!(
                    (f64::from(*g) - e).abs() <= 1e-4 * scale,
                    "{spec:?}: {g} vs {e}"
                );
            }
        }
    }
}

#[test]
fn threads_and_instruction_sets_give_the_same_bits() {
    let spec = ModelSpec {
        d_in: 3,
        hidden: vec![40, 24],
        activation: Activation::Tanh,
    };
    let params = spec.init(5);
    let (x, y) = batch(1000, 3);
    let adam = crate::optim::Optimizer::adam(Adam {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    });
    let mut runs = Vec::new();
    for isa in InstructionSet::ALL
        .into_iter()
        .filter(|isa| isa.is_available())
    {
        for threads in [1, 2, 3] {
            let mut step = DenseStep::new(&spec, &params, None, Loss::default());
            step.set_instruction_set(isa);
            let losses: Vec<u32> = (1..=5)
                .map(|t| step.step(&x, &y, &adam, t, threads).to_bits())
                .collect();
            runs.push((
                format!("{isa} x{threads}"),
                losses,
                step.params.clone(),
                step.m.clone(),
            ));
        }
    }
    let (name, losses, params, m) = &runs[0];
    for (other, l, p, mm) in &runs[1..] {
        assert_eq!(l, losses, "{other} vs {name}");
        assert!(p == params && mm == m, "{other} vs {name}");
    }
}

#[test]
fn padding_stays_zero_and_packing_round_trips() {
    let spec = ModelSpec {
        d_in: 2,
        hidden: vec![5, 3],
        activation: Activation::Relu,
    };
    let params = spec.init(3);
    let layout = DenseLayout::new(&spec);
    assert_eq!(layout.unpack(&layout.pack(&params)), params);
    let mut step = DenseStep::new(&spec, &params, None, Loss::default());
    let (x, y) = batch(64, 2);
    let adam = crate::optim::Optimizer::adam(Adam {
        lr: 0.05,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    });
    for t in 1..=20 {
        step.step(&x, &y, &adam, t, 1);
    }
    let real: usize = params.iter().map(|p| p.data.len()).sum();
    let nonzero = step.params.iter().filter(|v| **v != 0.0).count();
    assert!(
        nonzero <= real,
        "padding left zero: {nonzero} nonzero of {real} real values"
    );
    assert_ne!(layout.unpack(&step.params), params, "trained");
}

#[test]
fn training_fits_the_batch_and_a_non_finite_loss_changes_nothing() {
    let spec = ModelSpec {
        d_in: 1,
        hidden: vec![16],
        activation: Activation::Tanh,
    };
    let mut step = DenseStep::new(&spec, &spec.init(1), None, Loss::default());
    let x: Vec<f32> = (0..128).map(|i| i as f32 / 32.0).collect();
    let y: Vec<f32> = x.iter().map(|x| x.sin()).collect();
    let adam = crate::optim::Optimizer::adam(Adam {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    });
    let first = step.step(&x, &y, &adam, 1, 1);
    let mut last = first;
    for t in 2..=2000 {
        last = step.step(&x, &y, &adam, t, 1);
    }
    assert!(last < first / 20.0 && last < 0.01, "{first} -> {last}");
    let before = step.params.clone();
    let mut bad = y.clone();
    bad[7] = f32::NAN;
    assert!(step.step(&x, &bad, &adam, 2001, 1).is_nan());
    assert_eq!(step.params, before);
}
