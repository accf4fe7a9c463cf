#!/usr/bin/env python
"""Times the full cold book: `bash tasks.sh report` in a fresh clone of this checkout's HEAD, with `../shared` linked
beside it (the environment installed from the lock file, every experiment run at full fidelity, every page executed,
the site compiled), and records the wall time, its phases (the runner's two passes, read from the log's progress bars),
the per-experiment wall times (`_book/runs/status.json`) beside what each experiment trained (models, epochs and gradient
steps, counted from its run folder), and the two targets (the speed issue's 15 minutes, the claims issue's 60 minutes,
on 2 idle cores) in --out and the .md beside it.

    .venv/bin/python benchmarks/cold_book.py --dir /work/scratch/book           # clones into DIR/main; about an hour on 2 cores
    .venv/bin/python benchmarks/cold_book.py --dir DIR --record                  # run nothing: record the build finished in DIR

A build started by hand the same way, `( time bash tasks.sh report ) > DIR/report.log 2>&1` in DIR/main, can be
recorded with --record too: the wall time is then the `real` line that `time` wrote at the end of the log.
Keep the machine otherwise idle while it runs: the number is a wall time, not a ratio.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, ROOT, load_results, machine_info, save_results, target, write_text_atomic  # noqa: E402

GOAL_MINUTES = 15              # the speed issue's target
CLAIMS_GOAL_MINUTES = 60       # the claims issue's compute budget
TRAIN_FRACTION = 0.6           # of n_samples in the training split (moons_vae.data.SPLIT_FRACTIONS; not imported: no torch here)
SEARCH_N_SAMPLES = 2000        # the searches' data set (RunConfig's default n_samples)
TIMING = "cold_book.json"      # written beside the clone by a build this script ran


def bash_time_seconds(log_text: str) -> float | None:
    "The `real` time (seconds) that bash's `time` printed last in `log_text`, or None."
    found = re.findall(r"^real\s+(?:(\d+)m)?([\d.]+)s\s*$", log_text, flags=re.M)
    if not found: return None
    m, s = found[-1]
    return 60 * int(m or 0) + float(s)


def slowest(status: dict, n: int = 8) -> list[tuple[str, float]]:
    "The `n` experiments of a status.json that took longest, (name, seconds), slowest first."
    ran = [(k, v["seconds"]) for k, v in status.items() if v.get("status") == "ran" and v.get("seconds") is not None]
    return sorted(ran, key=lambda kv: -kv[1])[:n]


def runner_passes(log_text: str) -> list[tuple[int, float]]:
    "Per progress bar of the runner in a report log (one per pass: experiments and library pages, then chapters): (jobs, seconds)."
    bars = []
    for done, total, h, m, sec in re.findall(r"experiments:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)", log_text):
        t = 3600 * int(h or 0) + 60 * int(m) + int(sec)
        if not bars or int(total) != bars[-1][0] or t < bars[-1][1]: bars.append([int(total), t])
        else: bars[-1][1] = t
    return [(n, float(t)) for n, t in bars]


def _rows(run_dir: Path) -> list[dict]:
    "Every model an experiment trained, as {n_samples, batch_size, epochs}, from the rows its run folder keeps."
    for name in ("cells.json", "points.json"):
        if (run_dir / name).is_file():
            return [dict(n_samples=r["n_samples"], batch_size=r["batch_size"], epochs=r["epochs"])
                    for r in json.loads((run_dir / name).read_text()) if r.get("epochs")]
    if (run_dir / "trials.json").is_file():
        return [dict(n_samples=SEARCH_N_SAMPLES, batch_size=t["params_batch_size"], epochs=t["user_attrs_epochs"])
                for t in json.loads((run_dir / "trials.json").read_text()) if t.get("user_attrs_epochs")]
    if (run_dir / "history.json").is_file() and (run_dir / "config.json").is_file():
        c = json.loads((run_dir / "config.json").read_text())
        return [dict(n_samples=c["n_samples"], batch_size=c["batch_size"], epochs=len(json.loads((run_dir / "history.json").read_text())))]
    return []


def training_work(run_dir: Path) -> dict:
    "What an experiment trained: models, epochs and gradient steps (an epoch is ceil(training points / batch size) steps)."
    rows = _rows(run_dir)
    steps = sum(r["epochs"] * math.ceil(round(TRAIN_FRACTION * r["n_samples"]) / r["batch_size"]) for r in rows)
    return dict(models=len(rows), epochs=sum(r["epochs"] for r in rows), steps=steps)


def build(dest: Path) -> dict:
    "Clone HEAD into dest/main, run the report there, return the timing record (also written to dest/cold_book.json)."
    clone = dest / "main"
    if clone.exists(): raise SystemExit(f"cold_book.py: {clone} exists; give an empty --dir (a cold build starts from nothing)")
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shared = ROOT.parent / "shared"
    if shared.exists() and not (dest / "shared").exists(): (dest / "shared").symlink_to(shared)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    t, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with open(dest / "report.log", "w") as fh:
        rc = subprocess.run(["bash", "tasks.sh", "report"], cwd=clone, stdout=fh, stderr=subprocess.STDOUT).returncode
    rec = dict(started=started, seconds=round(time.perf_counter() - t, 1), rc=rc, load_at_start=load)
    write_text_atomic(dest / TIMING, json.dumps(rec, indent=1))
    return rec


def record(dest: Path) -> dict:
    "The timing record of the build in dest: its cold_book.json, or the `time` line of a build started by hand."
    f = dest / TIMING
    if f.is_file(): return json.loads(f.read_text())
    log = dest / "report.log"
    seconds = bash_time_seconds(log.read_text()) if log.is_file() else None
    if seconds is None: raise SystemExit(f"cold_book.py: {dest} holds neither {TIMING} nor a report.log ending with `time`'s real line")
    ok = "book built:" in log.read_text()
    return dict(started=None, seconds=seconds, rc=0 if ok else 1, load_at_start=None)


def entry_for(dest: Path, rec: dict, command: str) -> dict:
    clone = dest / "main"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    status_file = clone / "_book" / "runs" / "status.json"
    status = json.loads(status_file.read_text()) if status_file.is_file() else {}
    ran = [k for k, v in status.items() if v.get("status") == "ran"]
    top = slowest(status)
    minutes = rec["seconds"] / 60
    cause = ("; what limits it: " + ", ".join(f"{k} {s:.0f} s" for k, s in top[:6])
             + f" (the {len(ran)} experiments run two at a time on the 2 cores)") if top else ""
    log = dest / "report.log"
    passes = runner_passes(log.read_text(errors="replace")) if log.is_file() else []
    work = {k: training_work(clone / "_book" / "runs" / k) for k in ran}
    note = f"commit {commit[:10]}, {len(ran)} experiments" + ("" if rec["rc"] == 0 else f", exit code {rec['rc']}: not finished, so a lower bound")
    return dict(command=command, date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=commit, started=rec.get("started"),
                seconds=rec["seconds"], rc=rec["rc"], load_at_start=rec.get("load_at_start"), machine=machine_info(),
                experiments_ran=len(ran), experiments_failed=sum(v.get("status") == "failed" for v in status.values()),
                slowest=top, experiment_seconds={k: v.get("seconds") for k, v in status.items()}, work=work,
                passes=passes, outside_runner_seconds=round(rec["seconds"] - sum(t for _, t in passes), 1) if passes else None,
                targets=[target(f"full cold book (bash tasks.sh report, fresh clone) <= {goal} min", round(minutes, 1), goal,
                                higher_is_better=False, note=note, cause=cause) for goal in (GOAL_MINUTES, CLAIMS_GOAL_MINUTES)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dir", required=True, help="folder for the clone (DIR/main), its log and its timing; empty unless --record")
    p.add_argument("--record", action="store_true", help="run nothing: record the build already finished in --dir")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    a = p.parse_args(argv)
    dest = Path(a.dir).absolute()
    if a.record and not (dest / "main").is_dir(): p.error(f"--record: {dest / 'main'} is not a folder (no build to record)")
    rec = record(dest) if a.record else build(dest)
    entry = entry_for(dest, rec, shlex.join([".venv/bin/python", "benchmarks/cold_book.py", *(sys.argv[1:] if argv is None else argv)]))
    results = load_results(a.out)
    results["cold_book"] = entry
    j, md = save_results(results, a.out)
    print(f"cold book: {entry['seconds'] / 60:.1f} min, {entry['experiments_ran']} experiments, exit code {entry['rc']}; wrote {j} and {md}")
    return 0 if entry["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
