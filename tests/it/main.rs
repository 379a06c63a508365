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
mod formats;
mod fused;
mod fuzz;
mod mlp;
mod observe;
mod ols_summary;
mod reliability;
mod resume;
mod sharded_ols;
mod shell_and_install;
mod signals;
mod stdout;
mod training;
