#!/usr/bin/env python3
"""Fails when the dev-dependencies change the features of a normal dependency for the default
feature set: `cargo build --release` and `cargo test --release` would then each compile burn
(~25 minutes on 2 cores). Compares `cargo tree` with and without the dev edges."""
import subprocess
import sys


def features(edges):
    out = subprocess.run(
        ["cargo", "tree", "-e", edges, "-f", "{p} {f}", "--prefix", "none"],
        check=True, capture_output=True, text=True,
    ).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] != "burnfit":
            table[(parts[0], parts[1])] = set(parts[2].split(",")) if len(parts) > 2 else set()
    return table


normal, dev = features("normal"), features("normal,dev")
changed = [(p, sorted(dev[p] - normal[p])) for p in sorted(normal) if p in dev and dev[p] != normal[p]]
for (name, version), added in changed:
    print(f"{name} {version}: the dev-dependencies add features {added}; add them in Cargo.toml")
sys.exit(1 if changed else 0)
