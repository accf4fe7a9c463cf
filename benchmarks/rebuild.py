#!/usr/bin/env python
"""Times the main job after a one-line change to the plots: `bash tasks.sh report` in a checkout whose book is built.

  warm     `bash tasks.sh report`, nothing changed: every experiment and page must come from the cache (else the book
           was not built, and the script stops rather than time a cold build);
  plots    one line added to the exported code of nbs/05_plots.ipynb (the source of moons_vae/plots.py; tasks.sh
           exports it), then `bash tasks.sh report`: the experiments that draw figures re-execute, their trained
           models come from the memo (moons_vae.memo), the searches keep their studies;
  restore  the notebook put back, `bash tasks.sh report` again (the book as it was).

Counts the trainings the rebuild did (new entries in the memo folder `data/fits`: a model or group of models trained
rather than loaded) and the experiments re-executed, and merges the numbers into --out (JSON) and the .md beside it, with the
target of the pipeline issue: the rebuild after a plots change under 5 minutes.

    .venv/bin/python benchmarks/rebuild.py --repo /path/to/a/clone/with/a/built/book    # full fidelity there
    .venv/bin/python benchmarks/rebuild.py --repo CLONE --profile quick                  # a book built with --profile quick

The notebook is restored even when a phase fails or the script is interrupted.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, ROOT, load_results, machine_info, save_results, target, timed_run, write_text_atomic  # noqa: E402

PLOTS_NOTEBOOK = "nbs/05_plots.ipynb"
TOUCH = "_REBUILD_BENCHMARK = 1   # a one-line change made by benchmarks/rebuild.py, removed again afterwards"
GOAL_SECONDS = 300


def add_line(nb_text: str) -> str:
    "The notebook with TOUCH appended to its first exported code cell."
    nb = json.loads(nb_text)
    cell = next((c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).startswith("#| export")), None)
    if cell is None: raise ValueError(f"{PLOTS_NOTEBOOK} has no exported code cell")
    src = "".join(cell["source"])
    cell["source"] = (src.rstrip("\n") + "\n" + TOUCH).splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def memo_entries(repo: Path) -> set:
    "The entries of the memo of trained models (one per trained model or group of models)."
    return {p.name for p in (repo / "data" / "fits").glob("*")}


def run_phase(name: str, repo: Path, args: list[str], logs: Path) -> dict:
    "`bash tasks.sh report ARGS` in `repo`: wall time, exit code, experiments whose run folder changed."
    memo_before = memo_entries(repo)
    cmd = ["bash", "tasks.sh", "report", "--quiet", *args]
    seconds, returncode, ran, _, text = timed_run(cmd, repo, repo / "_book" / "runs", logs / f"{name}.log")
    return dict(command=shlex.join(cmd), seconds=round(seconds, 1), returncode=returncode, ran=ran,
                trainings=len(memo_entries(repo) - memo_before), book_rebuilt="book built" in text,
                log_tail=text[-3000:] if returncode else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--repo", default=str(ROOT), help="the checkout whose built book is rebuilt (default: this one)")
    p.add_argument("--profile", default=None, help="passed to `tasks.sh report --profile` (the profile the book was built with)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    a = p.parse_args(argv)
    repo = Path(a.repo).resolve()
    nb_path = repo / PLOTS_NOTEBOOK
    if not (repo / "tasks.sh").is_file() or not nb_path.is_file(): p.error(f"--repo {repo} is not a moons_vae checkout")
    if not (repo / "_book" / "runs").is_dir(): p.error(f"{repo} has no built book (_book/runs); build it first: bash tasks.sh report")
    extra = ["--profile", a.profile] if a.profile else []
    logs = repo / "benchmarks" / "out" / "rebuild"
    logs.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    original = nb_path.read_text()
    phases = {}
    print(f"rebuild: {repo} at {commit[:10]}", flush=True)
    warm = phases["warm"] = run_phase("warm", repo, extra, logs)
    print(f"  warm: {warm['seconds']} s, ran {warm['ran']}", flush=True)
    if warm["returncode"] != 0 or warm["ran"]:
        print(f"rebuild: the warm report was not a cache hit (exit {warm['returncode']}, ran {warm['ran']}): "
              "build the book completely first; nothing timed", file=sys.stderr)
        return 1
    try:
        write_text_atomic(nb_path, add_line(original))
        phases["plots"] = run_phase("plots", repo, extra, logs)
        print(f"  plots: {phases['plots']['seconds']} s, ran {phases['plots']['ran']}", flush=True)
    finally:
        write_text_atomic(nb_path, original)
    phases["restore"] = run_phase("restore", repo, extra, logs)
    print(f"  restore: {phases['restore']['seconds']} s, ran {phases['restore']['ran']}", flush=True)

    plots = phases["plots"]
    entry = dict(command=shlex.join([".venv/bin/python", "benchmarks/rebuild.py", *(sys.argv[1:] if argv is None else argv)]),
                 date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=commit, profile=a.profile or "full", machine=machine_info(),
                 phases=phases,
                 targets=[target(f"report after a one-line plots change < {GOAL_SECONDS} s [{a.profile or 'full'}]",
                                 plots["seconds"] if plots["returncode"] == 0 else None, GOAL_SECONDS, higher_is_better=False,
                                 note=f"{len(plots['ran'])} experiments re-executed, {plots['trainings']} trainings (the rest from the memo)",
                                 cause="; the re-executed notebooks' own evaluation and figures are what is left")])
    results = load_results(a.out)
    results.setdefault("rebuild", {})[a.profile or "full"] = entry
    j, md = save_results(results, a.out)
    t = entry["targets"][0]
    print(f"  {t['status']} {t['name']}: {t['value']} s ({t['note']})\nwrote {j} and {md}")
    return 0 if all(ph["returncode"] == 0 for ph in phases.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
