#!/usr/bin/env python
"""Times the main command's pipeline, `moons-vae run` over params/*.yaml, in a temporary folder (never `_book/runs`):

  cold     empty runs folder and empty data folder: every experiment runs;
  warm     the same command again, nothing changed: everything must come from the cache;
  changed  one params file changed (a copy with one value touched, e.g. seed 42 -> 43): only that experiment reruns.

Reports the total epochs trained (sum of len(history.json) over the run folders) divided by the cold wall time
("pipeline epochs per second"), beside the reference-style Lightning loop's epochs/s (figure (a) of
benchmarks/run.py, read from --out if present), and merges its numbers into --out (JSON) and the .md next to it,
each written atomically. Targets: pipeline epochs/s >= 10x (a); warm rebuild < 15 s.

    .venv/bin/python benchmarks/pipeline.py                  # all params/*.yaml, full fidelity (several minutes)
    .venv/bin/python benchmarks/pipeline.py --profile quick  # with a `moons-vae run --profile`

With --runs-dir (and --data-dir) the phases run in those folders instead of a temporary one, so a cold measurement
can also be the real full run that the book is built from (`moons-vae report` afterwards finds every run cached).
The runs folder must then hold no finished run and the search folder beside the data folder no study (else the
"cold" time would not be cold); a last phase, `restore`, reruns the touched experiment with its own params file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, ROOT, link_pipeline, load_results, machine_info, run_snapshot, save_results, timed_run  # noqa: E402
from moons_vae.data import SPLIT_FRACTIONS  # noqa: E402
from moons_vae.train import RunConfig  # noqa: E402




REF_TRAIN_POINTS = 1200   # training points of the tuned config's epoch, the unit of (a)


def _train_points(n_samples) -> float:
    "Training points of a data set of n_samples (RunConfig's default when unknown), by the package's split fractions."
    return SPLIT_FRACTIONS[0] * float(n_samples or RunConfig().n_samples)


def _config_n_samples(run_dir: Path):
    "n_samples of a run folder's config.json, or None without one."
    f = run_dir / "config.json"
    return json.loads(f.read_text()).get("n_samples") if f.is_file() else None


def epochs_trained(runs: Path) -> tuple[int, dict]:
    """Epochs trained per top-level run folder and in total. A training run counts len(history.json) (and the seconds
    inside its epochs, the sum of the history's `seconds`); a sweep the `epochs` of every row of cells.json or points.json; a search
    the `epochs` user attribute of its trials in trials.json (pruned trials do not record theirs, so a search is
    under-counted, which only happens for studies recorded before pruned trials stored theirs). `notebook_seconds` is the
    runner's wall time for the whole notebook (cache.json). `point_epochs` re-expresses the epochs in epochs of
    REF_TRAIN_POINTS training points, the size of (a)'s epoch: an epoch of the dataset sweep's n = 20000 cells is 10 of them."""
    per = {}
    for d in sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        row = {}
        if (d / "history.json").is_file():
            h = json.loads((d / "history.json").read_text())
            row = dict(kind="train", epochs=len(h), train_seconds=round(sum(r.get("seconds", 0.0) for r in h), 2),
                       point_epochs=len(h) * _train_points(_config_n_samples(d)) / REF_TRAIN_POINTS)
        elif (d / "cells.json").is_file() or (d / "points.json").is_file():
            cells = json.loads(((d / "cells.json") if (d / "cells.json").is_file() else (d / "points.json")).read_text())
            row = dict(kind=f"sweep ({len(cells)} models)", epochs=sum(int(c.get("epochs") or 0) for c in cells), train_seconds=None,
                       point_epochs=sum(int(c.get("epochs") or 0) * _train_points(c.get("n_samples")) for c in cells) / REF_TRAIN_POINTS)
        elif (d / "trials.json").is_file():
            trials = json.loads((d / "trials.json").read_text())
            ep = [t.get("user_attrs_epochs") for t in trials]
            done = [int(e) for e in ep if isinstance(e, (int, float)) and e == e]
            row = dict(kind=f"search ({len(trials)} trials, {len(trials) - len(done)} without an epoch count)",
                       epochs=sum(done), train_seconds=None, point_epochs=sum(done) * _train_points(_config_n_samples(d)) / REF_TRAIN_POINTS)
        else: row = dict(kind="unknown layout: epochs not counted", epochs=0, train_seconds=None, point_epochs=0.0)
        if (d / "cache.json").is_file(): row["notebook_seconds"] = json.loads((d / "cache.json").read_text()).get("runner_seconds")
        per[d.name] = row
    return sum(r["epochs"] for r in per.values()), per


def set_counts(pipe: dict, total: int, per: dict) -> None:
    "Store the epoch counts of the cold phase and the rates they give in a pipeline entry, in place."
    cold = pipe["phases"]["cold"]["seconds"]
    points = sum(r.get("point_epochs") or 0.0 for r in per.values())
    pipe.update(epochs_total=total, epochs_per_run=per, pipeline_epochs_per_s=total / cold,
                point_epochs_total=points, pipeline_point_epochs_per_s=points / cold)


def touch_value(src: Path, dest: Path, key: str, value: str) -> str:
    "Copy the params file `src` to `dest` with `key: value` set (replaced if present, else appended); returns the old value."
    text = src.read_text()
    pat = re.compile(rf"^{re.escape(key)}:[ \t]*(.*)$", re.M)
    m = pat.search(text)
    old = m.group(1).strip() if m else None
    text = pat.sub(f"{key}: {value}", text) if m else text.rstrip("\n") + f"\n{key}: {value}\n"
    dest.write_text(text)
    return old


def run_phase(name: str, cmd: list[str], runs: Path, log_dir: Path) -> dict:
    "Run the command once; wall time and which experiments ran (their cache.json changed) or failed."
    seconds, returncode, ran, n_after, text = timed_run(cmd, ROOT, runs, log_dir / f"{name}.log")
    failed = sorted(set(re.findall(r"^(\S+)\s+failed\b", text, re.M)))
    return dict(seconds=round(seconds, 2), returncode=returncode, ran=len(ran), ran_names=ran,
                cached=n_after - len(ran), failed=len(failed) or (None if returncode == 0 else "?"), failed_names=failed,
                log_tail=text[-3000:] if returncode else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("params", nargs="*", help="params files (default: params/*.yaml of the repository)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    p.add_argument("--change", default="vae.yaml:seed=43",
                   help="FILE:KEY=VALUE, the params file (by name) and the value touched for the 'changed' phase (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="passed to `moons-vae run --workers` (default: its own default)")
    p.add_argument("--profile", default=None, help="passed to `moons-vae run --profile` (default: none, full fidelity)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (runs, data, logs) and print where it is")
    p.add_argument("--recount", action="store_true", help="run nothing: recount the epochs of the saved entry (--profile, default full) "
                   "from the run folders of --runs-dir, which must be the ones that entry's cold phase wrote")
    p.add_argument("--runs-dir", default=None, help="run in this runs folder instead of a temporary one (must hold no finished run)")
    p.add_argument("--data-dir", default=None, help="with --runs-dir: the data folder (default: data); its search/ sibling must hold no study")
    a = p.parse_args(argv)
    if a.data_dir and not a.runs_dir: p.error("--data-dir needs --runs-dir")
    if a.recount:
        if not a.runs_dir: p.error("--recount needs --runs-dir")
        results = load_results(a.out)
        pipe = (results.get("pipeline") or {}).get(a.profile or "full")
        if not pipe: p.error(f"{a.out} has no pipeline entry {a.profile or 'full'!r} to recount")
        total, per = epochs_trained(Path(a.runs_dir))
        if sorted(per) != sorted(pipe["epochs_per_run"]):
            p.error(f"--runs-dir holds {sorted(per)}, the entry counted {sorted(pipe['epochs_per_run'])}: not the same runs")
        for k, row in per.items():   # times are the cold run's; a later rerun (restore) must not replace them
            row.update({t: pipe["epochs_per_run"][k].get(t) for t in ("train_seconds", "notebook_seconds")})
        set_counts(pipe, total, per)
        link_pipeline(results)
        j, md = save_results(results, a.out)
        print(f"recounted: {total} epochs, {pipe['point_epochs_total']:.0f} epochs of {REF_TRAIN_POINTS} points; wrote {j} and {md}")
        return 0
    m = re.fullmatch(r"([^:]+):([A-Za-z_][A-Za-z0-9_]*)=(.+)", a.change)
    if not m: p.error(f"--change={a.change!r} must look like FILE:KEY=VALUE, e.g. vae.yaml:seed=43")
    change_file, change_key, change_value = m.groups()
    from moons_vae.cli import NOT_EXPERIMENTS
    params = [Path(x).resolve() for x in a.params] if a.params else sorted(p for p in (ROOT / "params").glob("*.yaml") if p.name not in NOT_EXPERIMENTS)
    if not params: p.error("no params files given and none in params/")
    missing = [str(x) for x in params if not x.is_file()]
    if missing: p.error(f"params files not found: {missing}")
    target_file = next((x for x in params if x.name == change_file), None)
    if target_file is None: p.error(f"--change names {change_file!r}, which is not among the params files: {[x.name for x in params]}")
    moons_vae = Path(sys.executable).parent / "moons-vae"
    if not moons_vae.is_file(): p.error(f"{moons_vae} not found: run this with the project's .venv/bin/python")

    tmp = Path(tempfile.mkdtemp(prefix="moons_vae_pipeline_"))
    runs, data, logs, changed_dir = tmp / "runs", tmp / "data", tmp / "logs", tmp / "changed"
    if a.runs_dir:
        runs, data = Path(a.runs_dir).resolve(), Path(a.data_dir or "data").resolve()
        studies = sorted((data.parent / "search").glob("*.db"))
        if run_snapshot(runs) or studies:
            shutil.rmtree(tmp)
            p.error(f"not a cold start: {runs} holds finished runs {sorted(run_snapshot(runs))} or {data.parent / 'search'} "
                    f"holds studies {[x.name for x in studies]}; empty them first")
    logs.mkdir(); changed_dir.mkdir()
    base = [str(moons_vae), "run", "--runs-dir", str(runs), "--data-dir", str(data), "--quiet"]
    if a.workers is not None: base += ["--workers", str(a.workers)]
    if a.profile is not None: base += ["--profile", a.profile]
    rel = lambda x: os.path.relpath(x, ROOT) if str(x).startswith(str(ROOT)) else str(x)
    phases = {}
    try:
        print(f"pipeline: {len(params)} params files, temp folder {tmp}", flush=True)
        cmd = base + [rel(x) for x in params]
        for name in ("cold", "warm"):
            print(f"  {name}: {shlex.join(cmd)}", flush=True)
            phases[name] = run_phase(name, cmd, runs, logs)
            print(f"    {phases[name]['seconds']:.1f} s, ran {phases[name]['ran']}, cached {phases[name]['cached']}, "
                  f"exit code {phases[name]['returncode']}", flush=True)
            if name == "cold": epochs_total, per_run = epochs_trained(runs)
        old = touch_value(target_file, changed_dir / target_file.name, change_key, change_value)
        cmd_changed = base + [str(changed_dir / x.name) if x == target_file else rel(x) for x in params]
        print(f"  changed: {change_file} {change_key}: {old} -> {change_value}", flush=True)
        phases["changed"] = run_phase("changed", cmd_changed, runs, logs)
        phases["changed"]["change"] = f"{change_file}: {change_key} {old} -> {change_value}"
        phases["changed"]["epochs"] = sum(r["epochs"] for k, r in epochs_trained(runs)[1].items() if k in phases["changed"]["ran_names"])
        print(f"    {phases['changed']['seconds']:.1f} s, ran {phases['changed']['ran_names']}, exit code {phases['changed']['returncode']}", flush=True)
        if a.runs_dir:   # put the real experiment back
            print(f"  restore: {shlex.join(cmd)}", flush=True)
            phases["restore"] = run_phase("restore", cmd, runs, logs)
            print(f"    {phases['restore']['seconds']:.1f} s, ran {phases['restore']['ran_names']}, exit code {phases['restore']['returncode']}", flush=True)
    finally:
        if a.keep: print(f"kept {tmp}")
        else: shutil.rmtree(tmp, ignore_errors=True)

    results = load_results(a.out)
    cold = phases["cold"]["seconds"]
    results["pipeline"] = pipes = results.get("pipeline") if isinstance(results.get("pipeline"), dict) else {}
    if "phases" in pipes: pipes = results["pipeline"] = {}   # an older single-entry layout
    pipes[a.profile or "full"] = pipe = dict(
        command=shlex.join([".venv/bin/python", "benchmarks/pipeline.py", *(sys.argv[1:] if argv is None else argv)]),
        date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine=machine_info(), params_files=[x.name for x in params],
        workers=a.workers, profile=a.profile, phases=phases)
    set_counts(pipe, epochs_total, per_run)
    rate = pipe["pipeline_epochs_per_s"]
    link_pipeline(results)
    a_rate = pipe["a_epochs_per_s"]
    bad = [k for k, v in phases.items() if v["returncode"] != 0]
    if bad: pipe["error"] = f"phases {bad} exited non-zero; see log_tail"
    j, md = save_results(results, a.out)
    print(f"{epochs_total} epochs in {cold:.1f} s cold = {rate:.1f} pipeline epochs/s"
          + (f" = {pipe['ratio_to_a']:.2f}x (a) ({a_rate:.1f} epochs/s)" if a_rate else ""))
    for t in pipe["targets"]:
        print(f"  {t['status']:4s} {t['name']}: {t['value'] if t['value'] is None else round(t['value'], 3)} (goal {t['goal']})")
    print(f"wrote {j} and {md}")
    if bad:
        for k in bad: print(f"phase {k} failed (exit {phases[k]['returncode']}):\n{phases[k]['log_tail']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
