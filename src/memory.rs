//! How much memory the system can give this process now, for the checks that refuse work too
//! big to fit (a batch, a data table) before allocating it.

/// Memory the system can give now without swapping, if known: Linux's `MemAvailable`, lowered
/// to what is left under this process's cgroup limit (`memory.max` − `memory.current`) when it
/// has one. `BURNFIT_MEMORY_AVAILABLE` (bytes) replaces the reading, to try the checks without
/// filling a machine's memory.
pub fn available() -> Option<u64> {
    if let Some(bytes) = std::env::var("BURNFIT_MEMORY_AVAILABLE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return Some(bytes);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let system = kib * 1024;
    Some(cgroup_room().map_or(system, |room| room.min(system)))
}

/// What is left under the cgroup (v2) memory limit, when there is one.
fn cgroup_room() -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max": no limit
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}
