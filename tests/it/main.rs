//! burnfit's integration tests, one binary (each test binary links all of burn).
//! Run with `cargo test --release --features flex,wgpu,autograd-ref`.

mod autograd_compat;
mod bad_input;
mod bench;
mod checkpoint_files;
mod cli;
mod common;
mod config_toml;
mod csv_data;
mod destinations;
mod early_stopping;
mod evaluate;
mod formats;
mod fused;
mod fused_models;
mod fuzz;
mod json_output;
mod losses;
mod mlp;
mod observe;
mod ols_summary;
mod optimizers;
mod out_of_core;
mod parquet_data;
mod reliability;
mod resume;
mod ridge;
mod sharded_ols;
mod shell_and_install;
mod signals;
mod stdout;
mod streaming_predict;
mod tensorboard;
mod training;
