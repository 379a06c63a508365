//! `--engine fused` beyond the synthetic line's linear model: MLPs on the sine task and on
//! tables, on every backend, held to the autodiff engine and the GPU to the CPU; exact resume
//! and reruns; what it refuses.

use burnfit::config::{ModelKind, TableConfig, Task, TrainingConfig};
use burnfit::data::sine::SineData;
use burnfit::{BackendKind, Checkpoint, EngineKind};
use predicates::str::contains;

use crate::common::{backends, burnfit, final_loss, run_engine, serial, state_bits};

fn sine_mlp() -> TrainingConfig {
    TrainingConfig {
        task: Task::Sine,
        model: ModelKind::Mlp,
        ..Default::default()
    }
}

/// MSE of `checkpoint` on a sine batch no run sees (step 10^9).
fn fresh_sine_mse(checkpoint: &Checkpoint) -> f64 {
    let data = SineData::new(&TrainingConfig {
        batch: 4096,
        ..sine_mlp()
    });
    let (x, y) = data.host_batch(1_000_000_000);
    let params = checkpoint.named_params();
    x.iter()
        .zip(&y)
        .map(|(x, y)| {
            (checkpoint.spec.forward_host(&params, &[f64::from(*x)]) - f64::from(*y)).powi(2)
        })
        .sum::<f64>()
        / x.len() as f64
}

#[test]
fn the_fused_sine_mlp_fits_like_autodiff_and_resumes_exactly() {
    let _guard = serial();
    let config = sine_mlp();
    let mut cpu_runs: Vec<(BackendKind, Checkpoint)> = Vec::new();
    let mut gpu_runs = Vec::new();
    for backend in backends() {
        let kind = backend.kind;
        let fused = run_engine(EngineKind::Fused, &config, &backend, 1000, None);
        let f = fresh_sine_mse(&fused);
        assert!(f <= 0.01, "{kind}: fresh-batch MSE fused {f}");
        if kind == BackendKind::Wgpu {
            // The autodiff engine's MLP is slow on a software adapter: the GPU run is held to
            // the CPU's fused run instead (below), and resumes over a shorter run.
            gpu_runs.push(fused);
            if backend.adapter.as_ref().is_some_and(|a| !a.is_real_gpu()) {
                // A software adapter ends every loop of a dispatch past 65,535 iterations: a
                // large batch runs over several workgroups (two dispatches a step) and agrees
                // with the CPU's fused step; one too large even for 1,024 workgroups is refused
                // up front, in one line.
                let big = TrainingConfig {
                    batch: 4096,
                    ..config.clone()
                };
                let cpu = backends()
                    .into_iter()
                    .find(|b| b.kind != BackendKind::Wgpu)
                    .unwrap();
                let (on_gpu, on_cpu) = (
                    final_loss(&run_engine(EngineKind::Fused, &big, &backend, 3, None)),
                    final_loss(&run_engine(EngineKind::Fused, &big, &cpu, 3, None)),
                );
                assert!(
                    (on_gpu - on_cpu).abs() <= 1e-4 * on_cpu,
                    "batch 4096: wgpu fused {on_gpu} vs CPU fused {on_cpu}"
                );
                let huge = TrainingConfig {
                    batch: 1 << 23,
                    ..config.clone()
                };
                let err = burnfit::open_engine(EngineKind::Fused, huge, backend.clone(), None)
                    .err()
                    .expect("refused")
                    .to_string();
                assert_eq!(
                    err,
                    "--engine fused cannot run a step of mlp 1-64-64-1, tanh at batch 8388608 on this software adapter (its loop limit, even over 1024 workgroups); use a smaller --batch, --backend flex, or --engine autodiff"
                );
            }
            let first = run_engine(EngineKind::Fused, &config, &backend, 300, None);
            let resumed = run_engine(EngineKind::Fused, &config, &backend, 200, Some(&first));
            let whole = run_engine(EngineKind::Fused, &config, &backend, 500, None);
            assert_eq!(state_bits(&resumed), state_bits(&whole), "{kind}: resumed");
            let again = run_engine(EngineKind::Fused, &config, &backend, 500, None);
            assert_eq!(state_bits(&again), state_bits(&whole), "{kind}: rerun");
            continue;
        }
        let autodiff = run_engine(EngineKind::Autodiff, &config, &backend, 1000, None);
        // The same model from the same start on the same batches: both converge, to the same loss.
        let a = fresh_sine_mse(&autodiff);
        assert!(a <= 0.01, "{kind}: fresh-batch MSE autodiff {a}");
        let (lf, la) = (final_loss(&fused), final_loss(&autodiff));
        assert!(
            (lf - la).abs() <= 0.05 * la,
            "{kind}: final loss fused {lf} vs autodiff {la}"
        );
        // 600 + 400 steps through a file are the 1000, bit for bit; a rerun is identical.
        let first = run_engine(EngineKind::Fused, &config, &backend, 600, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mid.json");
        first.save(&path).unwrap();
        let resumed = run_engine(
            EngineKind::Fused,
            &config,
            &backend,
            400,
            Some(&Checkpoint::load(&path).unwrap()),
        );
        assert_eq!(state_bits(&resumed), state_bits(&fused), "{kind}: resumed");
        assert_eq!(
            state_bits(&run_engine(
                EngineKind::Fused,
                &config,
                &backend,
                1000,
                None
            )),
            state_bits(&fused),
            "{kind}: rerun"
        );
        cpu_runs.push((kind, fused));
    }
    // One CPU step, whatever burn backend hosts the run.
    for (kind, c) in &cpu_runs[1..] {
        assert_eq!(
            state_bits(c),
            state_bits(&cpu_runs[0].1),
            "{kind} vs {}",
            cpu_runs[0].0
        );
    }
    // The GPU kernel and the CPU step agree to rounding (their sums run in different orders,
    // and the GPU's exp and sin are its own): the final loss within 1e-3 relative.
    for gpu in &gpu_runs {
        let (lg, lc) = (final_loss(gpu), final_loss(&cpu_runs[0].1));
        assert!(
            (lg - lc).abs() <= 1e-3 * lc,
            "wgpu fused {lg} vs CPU fused {lc}"
        );
    }
}

#[test]
fn large_batches_use_threads_and_give_the_same_bits_as_one_thread() {
    // 4,096 rows: 16 groups, shared among the helper threads; the tested property is that the
    // result depends on the batch alone (the unit tests compare 1, 2 and 3 threads directly).
    let _guard = serial();
    let config = TrainingConfig {
        batch: 4096,
        hidden: vec![32],
        ..sine_mlp()
    };
    let backend = backends()
        .into_iter()
        .find(|b| b.kind != BackendKind::Wgpu)
        .unwrap();
    let a = run_engine(EngineKind::Fused, &config, &backend, 30, None);
    let b = run_engine(EngineKind::Fused, &config, &backend, 30, None);
    assert_eq!(state_bits(&a), state_bits(&b));
    let (la, lb) = (
        final_loss(&a),
        final_loss(&run_engine(
            EngineKind::Autodiff,
            &config,
            &backend,
            30,
            None,
        )),
    );
    assert!((la - lb).abs() <= 0.05 * lb, "fused {la} vs autodiff {lb}");
}

#[test]
fn an_mlp_on_a_table_and_the_linear_model_on_the_sine_task_train_fused() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..600 {
        let (a, b) = ((i as f64 * 0.37).sin() * 3.0, (i as f64 * 0.11).cos());
        text.push_str(&format!("{a},{b},{}\n", (a * b).tanh() + 0.5 * a));
    }
    std::fs::write(&csv, text).unwrap();
    let table = TrainingConfig {
        model: ModelKind::Mlp,
        hidden: vec![24, 12],
        data: Some(TableConfig::new(csv.display().to_string(), "y")),
        ..Default::default()
    };
    let linear_sine = TrainingConfig {
        task: Task::Sine,
        ..Default::default()
    };
    let backend = backends()
        .into_iter()
        .find(|b| b.kind != BackendKind::Wgpu)
        .unwrap();
    for config in [table, linear_sine] {
        let fused = run_engine(EngineKind::Fused, &config, &backend, 1000, None);
        let autodiff = run_engine(EngineKind::Autodiff, &config, &backend, 1000, None);
        assert_eq!(fused.spec, autodiff.spec);
        let (lf, la) = (final_loss(&fused), final_loss(&autodiff));
        assert!(
            (lf - la).abs() <= 0.05 * la,
            "{:?}: fused {lf} vs autodiff {la}",
            fused.spec
        );
        let first = run_engine(EngineKind::Fused, &config, &backend, 700, None);
        let resumed = run_engine(EngineKind::Fused, &config, &backend, 300, Some(&first));
        assert_eq!(state_bits(&resumed), state_bits(&fused));
    }
}

#[test]
fn the_cli_trains_a_fused_mlp_and_refuses_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    burnfit()
        .args([
            "train", "--task", "sine", "--model", "mlp", "--hidden", "16", "--engine", "fused",
        ])
        .args([
            "--backend",
            BackendKind::compiled()[0].name(),
            "--steps",
            "300",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("with the fused engine: mlp 1-16-1, tanh"));
    let checkpoint = Checkpoint::load(&out).unwrap();
    assert_eq!(checkpoint.step(), 300);
    assert_eq!(checkpoint.meta.unwrap().engine.as_deref(), Some("fused"));
    burnfit()
        .args(["train", "--task", "sine", "--model", "mlp", "--hidden", "64,257", "--engine", "fused", "--out"])
        .arg(dir.path().join("wide.json"))
        .assert()
        .code(2)
        .stdout("")
        .stderr("error: --engine fused takes hidden layers up to 256 wide, not 257; use --engine autodiff\n");
    assert!(!dir.path().join("wide.json").exists());
}

#[test]
fn a_large_tables_batches_gathered_ahead_give_the_autodiff_engines_fit_and_resume_exactly() {
    // 90,000 rows (72,000 training rows) at batch 512: the fused engine gathers its batches
    // ahead on a thread of its own (data::table::host_batches); a resume restarts that thread
    // at another step.
    use burnfit::data::table::host_batches::{AHEAD_MIN_BATCH, AHEAD_MIN_ROWS};
    const { assert!(72_000 >= AHEAD_MIN_ROWS && 512 >= AHEAD_MIN_BATCH) };
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let mut text = String::from("a,b,c,y\n");
    for i in 0..90_000 {
        let (a, b, c) = (
            (i % 97) as f64 / 9.0,
            (i % 89) as f64 - 40.0,
            (i % 13) as f64,
        );
        let noise = ((i * 7919 % 1000) as f64 / 1000.0 - 0.5) * 0.1;
        text.push_str(&format!("{a},{b},{c},{}\n", 2.0 * a - 0.5 * b + c + noise));
    }
    std::fs::write(&csv, text).unwrap();
    let config = TrainingConfig {
        batch: 512,
        data: Some(TableConfig::new(csv.display().to_string(), "y")),
        ..Default::default()
    };
    let backend = backends()
        .into_iter()
        .find(|b| b.kind != BackendKind::Wgpu)
        .unwrap();
    // 300 steps cross two epochs' ends (141 steps an epoch).
    let straight = run_engine(EngineKind::Fused, &config, &backend, 300, None);
    let first = run_engine(EngineKind::Fused, &config, &backend, 170, None);
    let resumed = run_engine(EngineKind::Fused, &config, &backend, 130, Some(&first));
    assert_eq!(state_bits(&resumed), state_bits(&straight));
    let autodiff = run_engine(EngineKind::Autodiff, &config, &backend, 300, None);
    let (lf, la) = (final_loss(&straight), final_loss(&autodiff));
    assert!((lf - la).abs() <= 1e-3 * la, "fused {lf} vs autodiff {la}");
}

#[test]
fn a_fused_gpu_batch_past_the_devices_largest_buffer_is_refused_in_one_line() {
    let Some(gpu) = backends().into_iter().find(|b| b.kind == BackendKind::Wgpu) else {
        return;
    };
    let room = gpu
        .adapter
        .as_ref()
        .expect("a wgpu adapter")
        .max_buffer_bytes;
    // The 1-256-1 MLP's scratch holds 2 × (1 + 256 + 1) + 1 floats a sample.
    let batch = room / (4 * 517) + 1;
    if batch > 1 << 22 {
        return; // a device with buffers this large is not this test's subject
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.json");
    let assert = burnfit()
        .env("XDG_RUNTIME_DIR", "/tmp")
        .args([
            "train", "--task", "sine", "--model", "mlp", "--hidden", "256",
        ])
        .args([
            "--engine",
            "fused",
            "--backend",
            "wgpu",
            "--steps",
            "2",
            "--batch",
        ])
        .arg(batch.to_string())
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: --batch {batch} needs ~"))
            && stderr.contains("largest buffer of"),
        "{stderr}"
    );
    assert!(!out.exists());
}
