//! burnfit as a library: train the seed workload (y = 2.5·x − 1 + noise) on the first compiled-in
//! backend, save the checkpoint, load it back and predict with it.
//!
//! `cargo run --release --example train_save_predict`

use burnfit::{Backend, BackendKind, Checkpoint, TrainingConfig, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = Backend::open(BackendKind::compiled()[0])?;
    let config = TrainingConfig::default(); // 1000 steps of Adam, batch 64, seed 42
    let report = train(&config, backend, |point| {
        if point.step % 100 == 0 {
            println!("step {:>4}  loss {:.4}", point.step, point.loss);
        }
    })?;
    println!("w = {:.4}, b = {:.4}", report.final_w(), report.final_b());

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("line.bpk");
    report.checkpoint.save(&path)?;
    let loaded = Checkpoint::load(&path)?;
    for x in [-1.0, 0.0, 2.0] {
        println!("prediction at x = {x:>4}: {:.4}", loaded.predict(&[x]));
    }
    Ok(())
}
