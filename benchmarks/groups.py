#!/usr/bin/env python
"""Times the dataset sweep's design trained the two ways `studies.curve_groups` can group it, side by side in this
checkout: one group per data draw (its seeds: with one seed per draw, a group of one model, as before each member
could have its own data set) and one group per data set size (its noise levels x draws x seeds, up to 16 members,
each on its own data set). One thread, the two ways' child processes interleaved (A B A B ...) so that a noisy
machine slows both alike; the ratio of their medians, and how far the two ways' metrics lie apart (they should
agree to float32 rounding: the same models).

    .venv/bin/python benchmarks/groups.py                       # the VAE over the full grid, 1000 steps per model
    .venv/bin/python benchmarks/groups.py --models vae cvae --steps 5000 --repeats 3

Each child trains and evaluates every model (`run_groups`, workers=1, a fresh data and memo folder), as the sweep's
notebook does; the wall time covers both.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, ROOT, load_results, machine_info, run_child, save_results  # noqa: E402

SIZES = [200, 2000, 20000]                               # params/sweep_data.yaml's grid (the notebook's defaults)
NOISES = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
DRAWS, SEEDS = [42, 43], [42]

CHILD = r"""
import json, sys, tempfile, time, torch
torch.set_num_threads(1)
from moons_vae.studies import curve_groups, run_groups
a = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    groups = curve_groups({}, a["models"], a["sizes"], a["draws"], a["seeds"], a["steps"], d, noise_grid=a["noises"],
                          group_size=a["group_size"])
    t = time.perf_counter(); rows = run_groups(groups, d, eval_K=64, workers=1, progress=False); s = time.perf_counter() - t
print(json.dumps({"seconds": s, "groups": len(groups), "recon_mse_mean": [r.get("recon_mse_mean") for r in rows],
                  "test_nll": [r.get("test_nll") for r in rows]}))
"""


def max_abs_diff(a: list, b: list) -> float | None:
    "The largest |a_i - b_i| over the pairs where both are numbers (None where there is none)."
    d = [abs(x - y) for x, y in zip(a, b) if isinstance(x, (int, float)) and isinstance(y, (int, float))]
    return max(d) if d else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--models", nargs="+", default=["vae"], choices=["vae", "cvae"], help="model kinds (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="gradient steps per model (the book's sweep: 5000; default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="child processes per way (default: %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    a = p.parse_args(argv)
    if a.steps < 1: p.error(f"--steps {a.steps} must be >= 1")
    if a.repeats < 1: p.error(f"--repeats {a.repeats} must be >= 1")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    design = dict(models=a.models, sizes=SIZES, noises=NOISES, draws=DRAWS, seeds=SEEDS, steps=a.steps)
    ways = {"per draw": len(SEEDS), "per size": 16}        # members per group
    times, last = {w: [] for w in ways}, {}
    for r in range(a.repeats):
        for way, size in ways.items():
            res = run_child(ROOT, CHILD, json.dumps(design | {"group_size": size}), "groups.py")
            times[way].append(res["seconds"]); last[way] = res
            print(f"  repeat {r + 1}/{a.repeats} {way}: {res['groups']} groups, {res['seconds']:.1f} s", flush=True)
    med = {w: statistics.median(t) for w, t in times.items()}
    entry = dict(command=shlex.join([".venv/bin/python", "benchmarks/groups.py", *(sys.argv[1:] if argv is None else argv)]),
                 date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=head, machine=machine_info(), design=design,
                 models_trained=len(last["per size"]["recon_mse_mean"]), repeats=a.repeats,
                 rows=[dict(way=w, members_per_group=ways[w], groups=last[w]["groups"], seconds=round(med[w], 2)) for w in ways],
                 ratio=round(med["per draw"] / med["per size"], 2),
                 max_abs_diff={k: max_abs_diff(last["per draw"][k], last["per size"][k]) for k in ("recon_mse_mean", "test_nll")})
    results = load_results(a.out)
    results["groups"] = entry
    j, md = save_results(results, a.out)
    print(f"per draw {med['per draw']:.1f} s, per size {med['per size']:.1f} s: {entry['ratio']}x; "
          f"metrics apart by at most {entry['max_abs_diff']}; wrote {j} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
