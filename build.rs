//! Link-time settings for the `burnfit` binary only (no dependency is rebuilt by them).
//!
//! As a position-independent executable the binary holds ~180,000 relative relocations
//! (vtables and pointers of burn, wgpu and cubecl). The loader applies them at every start and
//! touches ~600 pages doing so: 3–4 ms on the 2-core CI machine, where a page fault costs ~5 µs —
//! more than the whole seed workload takes on the fused engine. So on Linux the binary is linked
//! as a plain (non-PIE) executable, whose addresses are fixed at link time: 130 page faults and
//! ~1 ms to start instead of 727 and ~4 ms (measured with `perf stat burnfit --version`). The
//! price is no address randomisation of the executable's own image (libraries and the stack
//! stay randomised). `BURNFIT_PIE=1 cargo build ...` keeps a PIE; its relocations are then
//! packed as DT_RELR where the C library loads them (glibc ≥ 2.36), which saves about a third.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BURNFIT_PIE");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-linux-gnu") {
        return;
    }
    if std::env::var("BURNFIT_PIE").is_ok_and(|v| v == "1") {
        if glibc_has_relr() {
            println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        }
    } else {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

/// Whether the C library the binary links against can load DT_RELR (glibc 2.36 or newer).
fn glibc_has_relr() -> bool {
    let output = std::process::Command::new("ldd").arg("--version").output();
    let Ok(output) = output else { return false };
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default();
    let version = first.rsplit(' ').next().unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
