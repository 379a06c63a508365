#!/usr/bin/env bash
# The fused engine's real-GPU checks (issue 7) in one call on a lent GPU machine, prepared so
# that a session that is lent one spends its minutes measuring, not writing scripts.
#
# On the device (see ../shared/docs/gpu-check.md for building and carrying the binary):
#   run: bash benches/gpu_check.sh      carry: [".gl", ".devbin"]      timeout_s: 540
# Here, against lavapipe, to check the script itself:
#   GPU_CHECK_LOCAL=1 BURNFIT=$CARGO_TARGET_DIR/release/burnfit OUT=/tmp/gpu-check \
#     bash benches/gpu_check.sh
#
# Writes every log under $OUT and prints a summary last: the cold first step, the seed workload
# and batch 2^20 per 1000 steps against the issue's targets, fused vs autodiff vs the CPU loop,
# 600 + 400 against 1000 steps, dispatch counts, then `burnfit bench` (seed workload, the sine
# MLP, a CSV table) and the PyTorch and JAX references.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if [ -z "${GPU_CHECK_LOCAL:-}" ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export CUBECL_WGPU_DEFAULT_DEVICE='DiscreteGpu(0)'
    gunzip -c .devbin/burnfit.gz > /tmp/burnfit && chmod +x /tmp/burnfit
    BURNFIT=/tmp/burnfit
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
B=${BURNFIT:?set BURNFIT to the burnfit binary}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-200}
# Every command ends by this many seconds after the start, so that the summary is printed
# within the device call's limit (540 s recommended above) whatever hangs.
DEADLINE=${DEADLINE:-420}

# run NAME SECONDS COMMAND...: the command's output in $OUT/NAME.txt, its exit code after it;
# cut to the time left before DEADLINE, skipped when less than 10 s are left.
run() {
    local name=$1 limit=$2 left=$((DEADLINE - SECONDS))
    shift 2
    if [ "$left" -lt 10 ]; then
        echo "skipped: the script's deadline (${DEADLINE} s) was reached" > "$OUT/$name.txt"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at ${SECONDS} s, limit ${limit} s): $*" >&2
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    echo "exit $?" >> "$OUT/$name.txt"
}

run backends 60 "$B" backends
# A cold process: pipeline creation and the first dispatch are in its first step.
run cold 60 "$B" train --backend wgpu --engine fused --out "$OUT/wgpu-fused.json" --force
run cold-again 60 "$B" train --backend wgpu --engine fused --out "$OUT/wgpu-fused-2.json" --force
run big 120 "$B" train --backend wgpu --engine fused --batch 1048576 --log-every 1000 \
    --out "$OUT/wgpu-fused-1m.json" --force
run cpu-fused 60 "$B" train --backend flex --engine fused --out "$OUT/flex-fused.json" --force
run wgpu-autodiff 120 "$B" train --backend wgpu --engine autodiff \
    --out "$OUT/wgpu-autodiff.json" --force
# 600 + 400 steps against the 1000 above.
run part1 60 "$B" train --backend wgpu --engine fused --steps 600 --out "$OUT/wgpu-600.json" --force
run part2 60 "$B" train --backend wgpu --engine fused --steps 400 --resume "$OUT/wgpu-600.json" \
    --out "$OUT/wgpu-600-400.json" --force
# Dispatches and their device times: cubecl's profile log, a `| time | kernel` line per dispatch
# (batch 64, then 2^20 for 10 steps).
CUBECL_DEBUG_LOG=stderr CUBECL_DEBUG_OPTION=profile run profile-64 60 "$B" train --backend wgpu --engine fused \
    --steps 1000 --log-every 500 --out "$OUT/profile-64.json" --force
CUBECL_DEBUG_LOG=stderr CUBECL_DEBUG_OPTION=profile run profile-1m 60 "$B" train --backend wgpu --engine fused \
    --batch 1048576 --steps 10 --log-every 10 --out "$OUT/profile-1m.json" --force
for name in wgpu-fused wgpu-fused-2 flex-fused wgpu-autodiff wgpu-600-400 wgpu-fused-1m; do
    [ -f "$OUT/$name.json" ] && "$B" inspect --json "$OUT/$name.json" > "$OUT/$name.inspect.json"
done
run bench "$BENCH_TIMEOUT" "$B" bench --backends flex,wgpu --engines autodiff,fused \
    --batches 64,4096,65536,1048576 --budget-s 20 --json "$OUT/bench.json"
# The sine MLP (1-64-64-1, tanh) and a CSV table: autodiff on the GPU against the CPU's fused
# engine (the fused MLP and table steps run on the CPU backends; wgpu rows say so and skip).
run bench-mlp 90 "$B" bench --task sine --model mlp --backends flex,wgpu --engines autodiff,fused \
    --batches 64,4096,65536 --steps 100 --repeat 3 --budget-s 15 --json "$OUT/bench-mlp.json"
run bench-csv 60 "$B" bench --data docs/data/diabetes.csv --target progression --backends flex,wgpu \
    --engines autodiff,fused --batches 64,4096 --steps 200 --budget-s 15 --json "$OUT/bench-csv.json"
# The MLP's first step on the GPU (issue 18's target: <= 3 s on an H200).
run mlp-first 120 "$B" train --task sine --model mlp --backend wgpu --steps 20 --log-every 10 \
    --out "$OUT/wgpu-mlp.json" --force
if [ -z "${GPU_CHECK_LOCAL:-}" ]; then
    run torch "$BENCH_TIMEOUT" python3 benches/torch_reference.py --json "$OUT/torch.json"
    run jax 120 python3 benches/jax_reference.py --devices gpu --json "$OUT/jax.json"
    run jax-mlp 120 python3 benches/jax_reference.py --devices gpu --model mlp --batches 64,4096,65536 \
        --systems scan --json "$OUT/jax-mlp.json"
fi

python3 - "$OUT" <<'PY'
import json, os, re, sys
out = sys.argv[1]

def text(name):
    try:
        return open(os.path.join(out, name + ".txt")).read()
    except OSError:
        return ""

def wb(name):
    try:
        variables = json.load(open(os.path.join(out, name + ".inspect.json")))["variables"]
        return {v["name"]: v["first_values"][0] for v in variables if v["name"] in ("w", "b")}
    except (OSError, KeyError, ValueError):
        return None

def timing(name):
    m = re.search(r"(\d+) steps in ([\d.]+) s \(first step ([\d.]+) ms\)", text(name))
    return (int(m.group(1)), float(m.group(2)) * 1e3, float(m.group(3))) if m else None

print("== summary")
adapter = [l for l in text("backends").splitlines() if "wgpu" in l]
print("adapter:", adapter[0].strip() if adapter else "?")
for name, label in [("cold", "cold process, seed workload"), ("cold-again", "second process"),
                    ("big", "batch 1,048,576")]:
    t = timing(name)
    print(f"{label}: " + (f"{t[0]} steps in {t[1]:.1f} ms, first step {t[2]:.1f} ms"
                           if t else "no timing line (see " + name + ".txt)"))
print("targets: seed workload <= 6.8 ms per 1000 steps, batch 2^20 <= 18 ms, first step <= 500 ms"
      " (steady-state numbers: the bench rows below)")
ref = wb("wgpu-fused")
for name in ["wgpu-fused-2", "flex-fused", "wgpu-autodiff", "wgpu-600-400"]:
    other = wb(name)
    if ref and other:
        d = max(abs(ref[k] - other[k]) for k in ("w", "b"))
        print(f"wgpu fused vs {name}: max |dw|,|db| = {d:.3g}" + (" (bit-identical)" if d == 0 else ""))
    else:
        print(f"wgpu fused vs {name}: missing")
for name, steps in [("profile-64", 1000), ("profile-1m", 10)]:
    dispatches = {}
    for m in re.finditer(r"^\| ([\d.]+)(ms|µs|us|ns|s) \| (\S+)", text(name), re.M):
        scale = {"s": 1e3, "ms": 1.0, "µs": 1e-3, "us": 1e-3, "ns": 1e-6}[m.group(2)]
        n, total = dispatches.get(m.group(3), (0, 0.0))
        dispatches[m.group(3)] = (n + 1, total + float(m.group(1)) * scale)
    summary = ", ".join(f"{k}: {n} dispatches, {t:.2f} ms" for k, (n, t) in dispatches.items())
    print(f"{name} ({steps} steps): "
          + (summary or f"no profile lines (see {name}.txt)"))
for name in ["bench", "bench-mlp", "bench-csv", "jax", "jax-mlp"]:
    try:
        report = json.load(open(os.path.join(out, name + ".json")))
        print(f"{name} ({report.get('workload', 'seed workload')}), µs per step, median:")
        for r in report["rows"]:
            us = r.get("us_per_step")
            value = f"{us:.1f}" if isinstance(us, (int, float)) and us == us else r.get("note", "")
            print(f"  {r['system']:<26} {r['batch']:>8}  {value}")
    except (OSError, KeyError, ValueError):
        print(f"{name}: no {name}.json (see {name}.txt)")
t = timing("mlp-first")
print("wgpu MLP: " + (f"{t[0]} steps in {t[1]:.1f} ms, first step {t[2]:.1f} ms" if t else "no timing line"))
if os.path.exists(os.path.join(out, "torch.txt")):
    print("torch reference:")
    print("\n".join("  " + l for l in text("torch").splitlines()[-14:]))
PY
