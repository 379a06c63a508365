#!/usr/bin/env python3
"""JAX reference for `burnfit bench`: python3 benches/jax_reference.py [--devices cpu,gpu]

Runs burnfit's seed workload (one neuron z = x @ w + b, MSE, Adam lr 0.01 eps 1e-8, a fresh batch
of y = 2.5x - 1 + N(0, 0.5^2) drawn on the device every step) and prints the same table as
`burnfit bench`, with the same JSON rows as benches/torch_reference.py (`--json`, for
`burnfit bench --plot-with`). Systems, per device:
- jax/scan: the whole run as ONE jitted `lax.scan` over the steps (data, forward, grad, Adam):
  the fastest thing JAX offers, one dispatch per run;
- jax/step: one jitted step called from Python per step (the state stays on the device).
Per (system, batch): a warm-up run whose time (compilation included) is reported, then --repeat
timed runs of --steps steps, each ending with the result read back (a device sync).

`--model mlp [--hidden 64,64]` times burnfit's sine MLP instead (`burnfit bench --task sine
--model mlp`): y = sin x, x ~ U(0, 10) drawn on the device, dense layers with tanh, Glorot-uniform
init, the same Adam.
"""
import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp

from reference_table import print_row, row

LR, BETA1, BETA2, EPS = 0.01, 0.9, 0.999, 1e-8
TRUE_W, TRUE_B, NOISE, X_LOW, X_HIGH = 2.5, -1.0, 0.5, -10.0, 10.0


def loss_fn(params, x, y):
    w, b = params
    return jnp.mean((x * w + b - y) ** 2)


def mlp_loss(params, x, y):
    h = x[:, None]
    layers = len(params) // 2
    for i in range(layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i + 1 < layers:
            h = jnp.tanh(h)
    return jnp.mean((h[:, 0] - y) ** 2)


def adam(params, m, v, grads, t):
    m = [BETA1 * mi + (1 - BETA1) * g for mi, g in zip(m, grads)]
    v = [BETA2 * vi + (1 - BETA2) * g * g for vi, g in zip(v, grads)]
    mhat = [mi / (1 - BETA1 ** t) for mi in m]
    vhat = [vi / (1 - BETA2 ** t) for vi in v]
    params = [p - LR * mh / (jnp.sqrt(vh) + EPS) for p, mh, vh in zip(params, mhat, vhat)]
    return params, m, v


HIDDEN = None  # set by --model mlp: the hidden widths


def make_step(batch):
    if HIDDEN is not None:
        return make_mlp_step(batch)

    def step(state, t):
        params, m, v, key = state
        k = jax.random.fold_in(key, t)
        kx, kn = jax.random.split(k)
        x = jax.random.uniform(kx, (batch,), minval=X_LOW, maxval=X_HIGH)
        y = TRUE_W * x + TRUE_B + NOISE * jax.random.normal(kn, (batch,))
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        params, m, v = adam(params, m, v, grads, t.astype(jnp.float32))
        return (params, m, v, key), loss

    return step


def make_mlp_step(batch):
    def step(state, t):
        params, m, v, key = state
        x = jax.random.uniform(jax.random.fold_in(key, t), (batch,), minval=0.0, maxval=10.0)
        loss, grads = jax.value_and_grad(mlp_loss)(params, x, jnp.sin(x))
        params, m, v = adam(params, m, v, grads, t.astype(jnp.float32))
        return (params, m, v, key), loss

    return step


def initial_state(device):
    if HIDDEN is not None:
        widths = [1] + HIDDEN + [1]
        key = jax.random.PRNGKey(7)
        params = []
        for fan_in, fan_out in zip(widths, widths[1:]):
            key, k = jax.random.split(key)
            limit = (6.0 / (fan_in + fan_out)) ** 0.5
            params += [jax.random.uniform(k, (fan_in, fan_out), minval=-limit, maxval=limit),
                       jnp.zeros((fan_out,), jnp.float32)]
        zeros = [jnp.zeros_like(p) for p in params]
        return jax.device_put((params, zeros, list(zeros), jax.random.PRNGKey(42)), device)
    zero = jnp.float32(0.0)
    state = ([jnp.float32(0.3), zero], [zero, zero], [zero, zero], jax.random.PRNGKey(42))
    return jax.device_put(state, device)


def scan_runner(batch, steps, device):
    step = make_step(batch)

    @jax.jit
    def run(state, first):
        ts = first + jnp.arange(steps, dtype=jnp.int32)
        return jax.lax.scan(step, state, ts)

    def go(state, first):
        state, losses = run(state, jnp.int32(first))
        return state, losses[-1]

    return go


def step_runner(batch, steps, device):
    step = jax.jit(make_step(batch))

    def go(state, first):
        loss = None
        for t in range(first, first + steps):
            state, loss = step(state, jnp.int32(t))
        return state, loss

    return go


def measure(runner, batch, steps, repeat, device):
    go = runner(batch, steps, device)
    state = initial_state(device)
    t0 = time.perf_counter()
    state, loss = go(state, 1)
    float(loss)  # read back: the device is done
    warm = (time.perf_counter() - t0) * 1e3
    times = []
    first = steps + 1
    for _ in range(repeat):
        t0 = time.perf_counter()
        state, loss = go(state, first)
        float(loss)
        times.append((time.perf_counter() - t0) * 1e3)
        first += steps
    if HIDDEN is not None:
        return warm, times, float(loss)
    w, b = (float(p) for p in state[0])
    return warm, times, (w, b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,gpu")
    parser.add_argument("--batches", default="64,4096,65536,1048576")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--systems", default="scan,step", help="scan, step or both")
    parser.add_argument("--cpu-max-batch", type=int, default=65536,
                        help="skip CPU rows above this batch (they take minutes)")
    parser.add_argument("--model", default="linear", choices=["linear", "mlp"],
                        help="linear: the seed workload; mlp: the sine MLP")
    parser.add_argument("--hidden", default="64,64", help="the MLP's hidden widths")
    parser.add_argument("--json")
    args = parser.parse_args()
    global HIDDEN
    if args.model == "mlp":
        HIDDEN = [int(w) for w in args.hidden.split(",")]
    devices = []
    for kind in [d for d in args.devices.split(",") if d]:
        try:
            devices.append((kind, jax.devices(kind)[0]))
        except RuntimeError:
            print(f"note: no JAX {kind} device, skipping its rows")
    runners = {"scan": scan_runner, "step": step_runner}
    rows = []
    header = True
    for batch in [int(b) for b in args.batches.split(",")]:
        for kind, device in devices:
            if kind == "cpu" and batch > args.cpu_max_batch:
                print(f"jax/{kind}          batch {batch}: skipped (above --cpu-max-batch {args.cpu_max_batch})")
                continue
            for system in [s for s in args.systems.split(",") if s]:
                warm, times, result = measure(runners[system], batch, args.steps, args.repeat, device)
                name = f"{kind} ({device.device_kind})"
                label = f"jax/{system}" + ("" if HIDDEN is None else "/mlp")
                rows.append(row(label, name, batch, args.steps, warm, times))
                print_row(rows[-1], header)
                header = False
                if HIDDEN is not None:
                    print(f"  final loss {result:.3g}")
                    continue
                w, b = result
                if abs(w - 2.5) > 0.05 or abs(b + 1.0) > 0.05:
                    print(f"warning: {system} on {kind} at batch {batch} ended at w={w:.4f} b={b:.4f}")
    machine = {
        "cpu_model": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "adapter": next((str(d.device_kind) for k, d in devices if k == "gpu"), None),
        "jax_version": jax.__version__,
    }
    print(f"machine: {machine}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
