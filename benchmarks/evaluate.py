#!/usr/bin/env python
"""Times `evaluate` (every metric of one trained model: likelihoods, IWAE, MMD, support and boundary shares) at a
baseline commit and in this checkout, side by side: the same models, one thread, the two versions' child processes
interleaved (A B A B ...) so that a noisy machine slows both alike, and the ratio of their medians.

Every evaluation in the book (a training run, each model of a sweep) goes through `evaluate`; at full fidelity a cold
build evaluates some two thousand models.

    .venv/bin/python benchmarks/evaluate.py --baseline 328f261        # the commit before the closed-form distances
    .venv/bin/python benchmarks/evaluate.py --baseline HEAD~3 --repeats 5

The baseline's package is taken from git (`git archive`) into a temporary folder; nothing in this checkout changes.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, ROOT, baseline_tree, load_results, machine_info, run_child, save_results  # noqa: E402

CASES = [("vae", 200), ("vae", 2000), ("vae", 20000), ("cvae", 2000)]   # (model, n_samples): the sweeps' sizes

# One child process per (version, repeat): trains each case's model briefly (a fixed seed: the same weights in both
# versions, whose training code is the same), then times evaluate on it (K = 64, as the sweeps use).
CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from moons_vae.train import RunConfig, make_model, fit
from moons_vae.evaluate import evaluate
from moons_vae.data import load_moons
out = {}
for model, n in json.loads(sys.argv[1]):
    cfg = RunConfig.from_dict({"model": model, "n_samples": n, "max_epochs": 20, "min_epochs": 20})
    data = load_moons(n, cfg.noise, cfg.data_seed, cache_dir=None)
    net = make_model(cfg); fit(net, data, cfg, progress=False); net.eval()
    t = time.perf_counter(); m = evaluate(net, data, cfg.beta, K=64, seed=cfg.seed); s = time.perf_counter() - t
    out[f"{model} n={n}"] = {"seconds": s, "test_nll": m.get("test_nll"), "samples_on_support": m.get("samples_on_support")}
print(json.dumps(out))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--baseline", required=True, help="the commit to compare with (any git revision)")
    p.add_argument("--repeats", type=int, default=3, help="child processes per version (default: %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    a = p.parse_args(argv)
    if a.repeats < 1: p.error(f"--repeats {a.repeats} must be >= 1")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    base = subprocess.run(["git", "rev-parse", a.baseline], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    times = {"baseline": {}, "current": {}}
    values = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_tree(a.baseline, Path(tmp), "evaluate.py")
        for r in range(a.repeats):
            for version, path in (("baseline", old), ("current", ROOT)):
                res = run_child(path, CHILD, json.dumps(CASES), "evaluate.py")
                for case, v in res.items():
                    times[version].setdefault(case, []).append(v["seconds"])
                    values.setdefault(case, {})[version] = {k: v[k] for k in ("test_nll", "samples_on_support")}
                print(f"  repeat {r + 1}/{a.repeats} {version}: " + ", ".join(f"{c} {v['seconds']:.2f} s" for c, v in res.items()), flush=True)
    rows = []
    for case in times["current"]:
        b, c = statistics.median(times["baseline"][case]), statistics.median(times["current"][case])
        rows.append(dict(case=case, baseline_seconds=round(b, 3), current_seconds=round(c, 3), ratio=round(b / c, 2),
                         baseline_values=values[case]["baseline"], current_values=values[case]["current"]))
    entry = dict(command=shlex.join([".venv/bin/python", "benchmarks/evaluate.py", *(sys.argv[1:] if argv is None else argv)]),
                 date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=head, baseline=base, repeats=a.repeats,
                 machine=machine_info(), rows=rows)
    results = load_results(a.out)
    results["evaluate"] = entry
    j, md = save_results(results, a.out)
    for row in rows: print(f"{row['case']}: baseline {row['baseline_seconds']} s, current {row['current_seconds']} s, {row['ratio']}x")
    print(f"wrote {j} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
