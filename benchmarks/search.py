#!/usr/bin/env python
"""Times one worker of the hyperparameter search (`moons_vae.search.run.run_search`: TPE, median pruning, a study in
SQLite) at a baseline commit (or this checkout, one trial at a time) and in this checkout (`--trials-at-once K` trials
trained together), side by side, and checks whether both propose, prune and score the same trials.

The two versions run as child processes in turn (A B A B ...), one thread each, on a fresh study file each time, so
that a noisy machine slows both alike. At the defaults (100 trials, up to 1000 epochs each: the report's full-fidelity
search) one repeat takes tens of minutes; `--trials 12 --max-epochs 300` gives the ratio in a few.

    .venv/bin/python benchmarks/search.py --baseline 94c2529                       # before WAL and the cached pruner
    .venv/bin/python benchmarks/search.py --baseline 94c2529 --trials 12 --max-epochs 300
    .venv/bin/python benchmarks/search.py --trials-at-once 8                        # this checkout: 1 vs 8 trials at once

With `--trials-at-once K > 1` the trials differ from one-at-a-time ones (TPE sees finished trials only between batches):
the table compares the time and the best value found.

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
from _common import DEFAULT_OUT, ROOT, baseline_tree, load_results, machine_info, run_child, save_results, target  # noqa: E402

FULL_TRIALS, FULL_EPOCHS, GOAL_SECONDS = 100, 1000, 300   # the report's search, and the target of the speed issue
CAUSE_ONE_BY_ONE = ("; what limits it: the trials train one after another, each at fit's speed on its own small configuration "
                    "(a second worker on the second core would share the study, not reproducibly)")
CAUSE_AT_ONCE = ("; what limits it: a batch costs what its widest member costs (padding), and lasts as long as its longest member "
                 "(members pruned or stopped early leave the stack, which then runs fewer models); one core")

# One child process per (version, repeat): a fresh study in a temporary SQLite file, one worker, one thread.
CHILD = r"""
import hashlib, json, os, sys, tempfile, time, torch
torch.set_num_threads(1)
from moons_vae.search.run import run_search
a = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    at_once = {"trials_at_once": a["trials_at_once"]} if a["trials_at_once"] > 1 else {}   # a baseline may predate the option
    st = run_search("bench", os.path.join(d, "bench.db"), a["model"], n_trials=a["trials"],
                    base_params={"max_epochs": a["max_epochs"]}, progress=False, **at_once)
    s = time.perf_counter() - t
    trials = [[t.number, t.state.name, t.value, t.params, sorted(t.intermediate_values.items())] for t in st.trials]
    print(json.dumps({"seconds": s, "trials": len(trials), "pruned": sum(t[1] == "PRUNED" for t in trials),
                      "epochs": sum(t.user_attrs.get("epochs", 0) for t in st.trials),
                      "best_value": st.best_value, "digest": hashlib.sha256(json.dumps(trials).encode()).hexdigest()}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--baseline", help="the commit to compare with (any git revision); default: this checkout, one trial at a time")
    p.add_argument("--trials-at-once", type=int, default=1, help="trials trained together in this checkout's runs (default: %(default)s)")
    p.add_argument("--model", default="vae", choices=["vae", "cvae", "contvae"], help="the model searched (default: %(default)s)")
    p.add_argument("--trials", type=int, default=FULL_TRIALS, help="trials in the study (default: %(default)s, the report's)")
    p.add_argument("--max-epochs", type=int, default=FULL_EPOCHS, help="epochs per trial at most (default: %(default)s, the report's)")
    p.add_argument("--repeats", type=int, default=1, help="child processes per version (default: %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    a = p.parse_args(argv)
    if a.baseline is None and a.trials_at_once == 1: p.error("give --baseline, or --trials-at-once K > 1 to compare with one at a time")
    for name, v in (("--trials", a.trials), ("--max-epochs", a.max_epochs), ("--repeats", a.repeats), ("--trials-at-once", a.trials_at_once)):
        if v < 1: p.error(f"{name} {v} must be >= 1")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    base = subprocess.run(["git", "rev-parse", a.baseline or "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    args = {v: json.dumps(dict(model=a.model, trials=a.trials, max_epochs=a.max_epochs, trials_at_once=k))
            for v, k in (("baseline", 1), ("current", a.trials_at_once))}
    runs = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_tree(a.baseline, Path(tmp), "search.py") if a.baseline else ROOT
        for r in range(a.repeats):
            for version, path in (("baseline", old), ("current", ROOT)):
                res = run_child(path, CHILD, args[version], "search.py")
                runs[version].append(res)
                print(f"  repeat {r + 1}/{a.repeats} {version}: {res['seconds']:.1f} s, {res['epochs']} epochs, "
                      f"{res['pruned']} pruned, best {res['best_value']:.5g}", flush=True)
    med = {v: statistics.median(x["seconds"] for x in runs[v]) for v in runs}
    digests = {x["digest"] for v in runs for x in runs[v]}
    full = a.trials == FULL_TRIALS and a.max_epochs == FULL_EPOCHS
    entry = dict(command=shlex.join([".venv/bin/python", "benchmarks/search.py", *(sys.argv[1:] if argv is None else argv)]),
                 date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=head, baseline=base, model=a.model, trials=a.trials,
                 max_epochs=a.max_epochs, repeats=a.repeats, machine=machine_info(), trials_at_once=a.trials_at_once,
                 baseline_best=runs["baseline"][0]["best_value"], current_best=runs["current"][0]["best_value"],
                 baseline_seconds=round(med["baseline"], 1), current_seconds=round(med["current"], 1),
                 ratio=round(med["baseline"] / med["current"], 2), same_trials=len(digests) == 1,
                 epochs=runs["current"][0]["epochs"], pruned=runs["current"][0]["pruned"],
                 targets=[target(f"{FULL_TRIALS}-trial search, full fidelity, one worker" + (f", {a.trials_at_once} trials at once" if a.trials_at_once > 1 else "")
                                 + f" <= {GOAL_SECONDS} s", med["current"] if full else None, GOAL_SECONDS, higher_is_better=False,
                                 note="one process, one thread" if full else f"measured on {a.trials} trials x {a.max_epochs} epochs, not the full search",
                                 cause=CAUSE_AT_ONCE if a.trials_at_once > 1 else CAUSE_ONE_BY_ONE)])
    results = load_results(a.out)
    results["search_at_once" if a.trials_at_once > 1 else "search"] = entry
    j, md = save_results(results, a.out)
    print(f"baseline {entry['baseline_seconds']} s, current {entry['current_seconds']} s: {entry['ratio']}x; "
          f"same trials: {entry['same_trials']}")
    print(f"wrote {j} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
