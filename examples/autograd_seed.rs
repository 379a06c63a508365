//! The autograd seed program, as a process: the seed workload (1000 steps, batch 64, Adam)
//! trained with the `autograd` crate, its results.json written by the crate's own
//! `VariableEnvironment::save`. The yardstick for `burnfit train` run the same way:
//!
//! ```sh
//! cargo build --release --features flex,wgpu,autograd-ref --examples
//! time target/release/examples/autograd_seed /tmp/autograd.json
//! time target/release/burnfit train --backend flex --engine fused --out /tmp/burnfit.json
//! ```

use burnfit::TrainingConfig;
use burnfit::autograd_reference::train_autograd_and_save;
use burnfit::model::LinearRegressionConfig;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "results.json".into());
    let config = TrainingConfig::default();
    let w0 = LinearRegressionConfig::new().initial_weights(config.seed)[0];
    match train_autograd_and_save(&config, w0, Some(path.as_ref())) {
        Ok(run) => println!("final w = {:.6}  b = {:.6}; saved {path}", run.w, run.b),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
