"""The rows and the table the reference benchmarks (torch_reference.py, jax_reference.py)
print and write, in `burnfit bench`'s shape."""
import statistics


def row(system, device_name, batch, steps, warm, times):
    times = sorted(times)
    median = statistics.median(times)
    return {
        "system": system,
        "device": device_name,
        "batch": batch,
        "steps": steps,
        "warmup_ms": warm,
        "median_ms": median,
        "min_ms": times[0],
        "max_ms": times[-1],
        "us_per_step": median * 1e3 / steps,
        "samples_per_s": batch * steps / (median / 1e3),
        "speedup_vs_autograd": None,
        "note": None,
    }


def print_row(r, header=False):
    if header:
        print(f"{'system':<16} {'device':<28} {'batch':>9} {'steps':>6} {'warmup ms':>10} "
              f"{'median ms (min-max)':>24} {'us/step':>10} {'samples/s':>13} {'vs autograd':>10}")
    span = f"{r['median_ms']:.1f} ({r['min_ms']:.1f}-{r['max_ms']:.1f})"
    print(f"{r['system']:<16} {r['device'][:28]:<28} {r['batch']:>9} {r['steps']:>6} {r['warmup_ms']:>10.1f} "
          f"{span:>24} {r['us_per_step']:>10.1f} {r['samples_per_s']:>13.3e} {'-':>10}", flush=True)
