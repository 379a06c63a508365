#!/usr/bin/env python3
"""PyTorch reference for `burnfit bench`: python3 benches/torch_reference.py [--devices cpu,cuda]

Runs burnfit's workloads (one neuron z = x @ w + b, MSE, Adam lr 0.01 eps 1e-8, a fresh batch of
y = 2.5x - 1 + N(0, 0.5^2) drawn on the device every step) and prints the same table as
`burnfit bench`. Per (system, batch): a warm-up run whose first step is reported, then --repeat
timed runs of --steps steps, each ending with a device sync; the loss is read back only at the
last step. Systems: torch/cpu, torch/cuda (eager) and torch/cuda-graph (the whole step, Adam
included, captured once as a CUDA graph and replayed: the fastest thing PyTorch offers here).
"""
import argparse
import json
import os
import platform
import time

import torch

from reference_table import print_row, row


def make_step(device, batch, capturable=False):
    w = torch.full((1, 1), 0.3, device=device, requires_grad=True)
    b = torch.zeros((1, 1), device=device, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.01, betas=(0.9, 0.999), eps=1e-8, capturable=capturable)

    def step():
        x = torch.rand(batch, 1, device=device) * 20.0 - 10.0
        y = 2.5 * x - 1.0 + 0.5 * torch.randn(batch, 1, device=device)
        loss = ((x @ w + b - y) ** 2).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return loss

    return step, w, b


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed_runs(run, device, steps, repeat):
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        loss = run(steps)
        loss.item()  # read back at the last step only
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def eager(device, batch, steps, repeat):
    torch.manual_seed(42)
    step, w, b = make_step(device, batch)

    def run(n):
        loss = None
        for _ in range(n):
            loss = step()
        return loss

    sync(device)
    t0 = time.perf_counter()
    step().item()
    warm = (time.perf_counter() - t0) * 1e3
    run(5)
    return warm, timed_runs(run, device, steps, repeat), (w.item(), b.item())


def cuda_graph(batch, steps, repeat):
    torch.manual_seed(42)
    step, w, b = make_step("cuda", batch, capturable=True)
    t0 = time.perf_counter()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = step()
    graph.replay()
    loss.item()
    warm = (time.perf_counter() - t0) * 1e3

    def run(n):
        for _ in range(n):
            graph.replay()
        return loss

    return warm, timed_runs(run, "cuda", steps, repeat), (w.item(), b.item())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--batches", default="64,4096,65536,1048576")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu-max-batch", type=int, default=65536,
                        help="skip CPU rows above this batch (they take minutes)")
    parser.add_argument("--json")
    args = parser.parse_args()
    devices = [d for d in args.devices.split(",") if d]
    if "cuda" in devices and not torch.cuda.is_available():
        print("note: CUDA not available, skipping torch/cuda rows")
        devices.remove("cuda")
    rows = []
    header = True
    for batch in [int(b) for b in args.batches.split(",")]:
        for device in devices:
            if device == "cpu":
                if batch > args.cpu_max_batch:
                    print(f"torch/cpu        batch {batch}: skipped (above --cpu-max-batch {args.cpu_max_batch})")
                    continue
                name = f"cpu ({torch.get_num_threads()} threads)"
                warm, times, wb = eager("cpu", batch, args.steps, args.repeat)
                rows.append(row("torch/cpu", name, batch, args.steps, warm, times))
                print_row(rows[-1], header)
                header = False
            else:
                name = torch.cuda.get_device_name(0)
                warm, times, wb = eager("cuda", batch, args.steps, args.repeat)
                rows.append(row("torch/cuda", name, batch, args.steps, warm, times))
                print_row(rows[-1], header)
                header = False
                warm, times, wb = cuda_graph(batch, args.steps, args.repeat)
                rows.append(row("torch/cuda-graph", name, batch, args.steps, warm, times))
                print_row(rows[-1])
            if abs(wb[0] - 2.5) > 0.05 or abs(wb[1] + 1.0) > 0.05:
                print(f"warning: {device} batch {batch} ended at w={wb[0]:.4f} b={wb[1]:.4f}")
    machine = {
        "cpu_model": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "adapter": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "torch_version": torch.__version__,
    }
    print(f"machine: {machine}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
