"""Shared pieces of the benchmark scripts: machine description, atomic writes, the results file and its markdown table.

Benchmark-only code: the `moons_vae` package never imports anything from here (nor Lightning).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results.json"


def write_text_atomic(path: str | Path, text: str) -> Path:
    "Write `text` to `path` atomically, with the usual permissions (the package's one helper for it)."
    from moons_vae.files import atomic_write
    return atomic_write(path, text)


def baseline_tree(commit: str, dest: Path, script: str = "benchmarks") -> Path:
    "A commit's package and lock file, extracted under `dest` (`git archive`); returns the folder to put on sys.path."
    archive = subprocess.run(["git", "archive", commit, "moons_vae", "requirements.lock"], cwd=ROOT, capture_output=True)
    if archive.returncode:
        raise SystemExit(f"{script}: --baseline {commit!r} is not a commit of this repository: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def run_child(path: Path, code: str, arg: str, script: str = "benchmarks") -> dict:
    "Run `code` in a fresh interpreter with `path` first on sys.path (its moons_vae is the one imported) and `arg` as"
    " sys.argv[1]; returns the JSON its last line of output holds."
    cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(path)!r}); exec(compile({code!r}, 'child', 'exec'))", arg]
    p = subprocess.run(cmd, cwd=path, capture_output=True, text=True)
    if p.returncode: raise SystemExit(f"{script}: the child process for {path} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    "The CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    "What the numbers were measured on."
    import torch
    info = dict(cpu_model=cpu_model(), logical_cores=os.cpu_count(),
                usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
                python_version=platform.python_version(), platform=platform.platform(),
                loadavg_at_start=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                date=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    try:
        import lightning
        info["lightning_version"] = lightning.__version__
    except ImportError: info["lightning_version"] = None
    return info


def run_snapshot(runs: Path) -> dict:
    "{experiment: content of its cache.json} for every finished run folder: what changed between two snapshots ran."
    out = {}
    for f in sorted(Path(runs).glob("*/cache.json")):
        try: out[f.parent.name] = f.read_text()
        except OSError: pass
    return out


def timed_run(cmd: list[str], cwd: Path, runs: Path, log: Path) -> tuple[float, int, list[str], int, str]:
    "Run `cmd` once in `cwd`, output to `log`: (seconds, exit code, experiments that ran, run folders after, the log's text)."
    import subprocess
    before = run_snapshot(runs)
    t = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t
    after = run_snapshot(runs)
    return seconds, proc.returncode, sorted(k for k, v in after.items() if before.get(k) != v), len(after), Path(log).read_text()


def summarize(times: list[float], work: float) -> dict:
    "Median rate `work / time` over repeats, with the spread (rates of the slowest and fastest repeat)."
    med = statistics.median(times)
    return dict(seconds=[round(t, 5) for t in times], median_seconds=round(med, 5), work=work,
                rate=work / med, rate_min=work / max(times), rate_max=work / min(times))


def load_results(path: str | Path) -> dict:
    "The results file, or an empty dict if there is none (an unreadable file is an error)."
    path = Path(path)
    if not path.exists(): return {}
    try: return json.loads(path.read_text())
    except ValueError as e: raise ValueError(f"results file {str(path)!r} is not valid JSON ({e}); delete it or pass another --out") from None


def save_results(results: dict, path: str | Path) -> tuple[Path, Path]:
    "Write `results` as JSON to `path` and its markdown rendering next to it (`.md`), each atomically."
    path = Path(path)
    if path.suffix != ".json": raise ValueError(f"--out must name a .json file, got {str(path)!r}")
    text_json, text_md = json.dumps(results, indent=1) + "\n", render_markdown(results)  # both rendered before either is written
    j = write_text_atomic(path, text_json)
    m = write_text_atomic(path.with_suffix(".md"), text_md)
    return j, m


def target(name: str, value: float | None, goal: float, higher_is_better: bool = True, note: str = "", cause: str = "") -> dict:
    "A target row: PASS/MISS and by how much (value relative to the goal); `cause`, what limits it, is added to the note of a MISS."
    if value is None:
        return dict(name=name, value=None, goal=goal, status="N/A", margin=None, note=note or "not measured")
    ok = value >= goal if higher_is_better else value < goal
    margin = value / goal - 1 if higher_is_better else goal / value - 1 if value > 0 else float("inf")
    return dict(name=name, value=value, goal=goal, status="PASS" if ok else "MISS", margin=margin, note=note + ("" if ok else cause))


def _pipeline_cause(p: dict, ca: float | None) -> str:
    "What limits the pipeline rate, from the entry's own numbers: training's share of the training runs' time, the epoch sizes."
    per = [r for r in (p.get("epochs_per_run") or {}).values() if r.get("train_seconds") is not None and r.get("notebook_seconds")]
    out = [f"even with both cores training all the time at fit's speed the pipeline would reach 2 x c/a = {2 * ca:.1f}x (a)"] if ca else []
    if per:
        share = sum(r["train_seconds"] for r in per) / sum(r["notebook_seconds"] for r in per)
        out.append(f"training is {share:.0%} of the training runs' notebook time (the rest: evaluation with IWAE and MMD, UMAP, plots, "
                   "kernel reset)")
    if p.get("point_ratio_to_a"):
        out.append(f"counted in epochs of (a)'s 1200 points the ratio is {p['point_ratio_to_a']:.1f}x")
    return ("; what limits it: " + "; ".join(out)) if out else ""


def link_pipeline(results: dict) -> None:
    """Set each pipeline entry's comparison with (a) (tuned config) from the same results file, and its targets; in place.

    `results["pipeline"]` maps a profile name ('full' or a `moons-vae run --profile` name) to that run's numbers."""
    try: a = results["configs"]["tuned"]["contenders"]["a"]["rate"]
    except (KeyError, TypeError): a = None
    for name, p in (results.get("pipeline") or {}).items():
        p["a_epochs_per_s"] = a
        p["a_source"] = f"benchmarks/run.py, run of {results.get('machine', {}).get('date', '?')}" if a else None
        p["ratio_to_a"] = p["pipeline_epochs_per_s"] / a if a else None
        p["point_ratio_to_a"] = p["pipeline_point_epochs_per_s"] / a if a and p.get("pipeline_point_epochs_per_s") else None
        p["targets"] = [
            target(f"pipeline epochs/s >= 10x (a) [{name}]", p["ratio_to_a"], 10,
                   note="cold `moons-vae run` (every notebook: training, evaluation, plots) vs the Lightning loop alone"
                   if a else "no (a) figure in the results file: run benchmarks/run.py", cause=_pipeline_cause(p, ((results.get("configs") or {}).get("tuned") or {}).get("ratios", {}).get("c/a"))),
            target(f"warm rebuild < 15 s [{name}]", p["phases"]["warm"]["seconds"], 15, higher_is_better=False,
                   note=f"nothing changed; {p['phases']['warm']['ran']} experiment(s) reran"),
        ]


# ---------------------------------------------------------------------------------------------------------------------
# Markdown

def _f(v, nd=3):
    if v is None: return "–"
    if isinstance(v, str): return v
    if isinstance(v, bool): return str(v)
    if isinstance(v, int): return str(v)
    if abs(v) >= 100: return f"{v:,.0f}"
    if abs(v) >= 10: return f"{v:.1f}"
    return f"{v:.{nd}g}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return out + [""]


def render_markdown(r: dict) -> str:
    "The results as a markdown report (tables); sections that were not measured are left out."
    L = ["# moons_vae speed benchmarks", ""]
    if "command" in r: L += [f"Command: `{r['command']}`  ", f"Measured: {r.get('machine', {}).get('date', '?')}", ""]
    m = r.get("machine")
    if m:
        L += ["## Machine", ""]
        L += _table(["", ""], [["CPU", m.get("cpu_model")], ["cores (logical / usable)", f"{m.get('logical_cores')} / {m.get('usable_cores')}"],
                                ["torch", m.get("torch_version")], ["lightning", m.get("lightning_version")],
                                ["threads per measurement", r.get("settings", {}).get("threads", 1)],
                                ["python", m.get("python_version")], ["load average at start / end",
                                 f"{_loads(m.get('loadavg_at_start'))} / {_loads(m.get('loadavg_at_end'))}"]])
    s = r.get("settings")
    if s:
        L += [f"Every figure is the median of {s['repeats']} repeats after a warm-up, all contenders interleaved in one process "
              f"(ratios are what count on a noisy machine). Each measurement trains a fresh model for {s['epochs']} epochs on "
              f"{s['n_train']} training points (batch {s['batch_size']}) with validation on {s['n_val']} points every epoch; "
              "time covers the whole training call (for Lightning: building the Trainer and `fit`), not building the model.", ""]
    for name, c in r.get("configs", {}).items():
        L += [f"## Config `{name}`: {c['description']}", ""]
        rows = []
        for key, v in c["contenders"].items():
            rows.append([f"({key[0]}) {v['label']}", v["rate"], f"{_f(v['rate_min'])}–{_f(v['rate_max'])}", v.get("rate_cpu"),
                         v.get("ceiling_fraction"), None if v.get("final_val_loss") is None else f"{v['final_val_loss']:.4f}"])
        L += _table(["contender", "epochs/s (median)", "range over repeats", "epochs per CPU-second (median)",
                     "fraction of FLOP ceiling", "val loss after the last repeat (per sample)"], rows)
        vec = c.get("vectorized")
        if vec and vec.get("available"):
            rows = [[k, v.get("epochs", r.get("settings", {}).get("epochs")), v["rate"], f"{_f(v['rate_min'])}–{_f(v['rate_max'])}",
                     v.get("rate_cpu"), v.get("ratio_to_c"), v.get("ceiling_fraction")] for k, v in vec["by_K"].items()]
            L += ["(d) vectorized training, one process, one thread (`moons_vae.vectorized.fit_many`):", ""]
            L += _table(["K (models at once)", "epochs", "model-epochs/s (median)", "range", "per CPU-second", "d/c",
                         "fraction of FLOP ceiling"], rows)
        elif vec:
            L += [f"(d) vectorized training: **not available** ({vec.get('reason')}).", ""]
        ce = c.get("ceiling")
        if ce:
            L += [f"FLOP ceiling: {ce['mflop_per_epoch']:.1f} MFLOP per epoch (train forward+backward ≈ 3× forward matmul FLOPs over "
                  f"{ce['n_train']} points + validation forward over {ce['n_val']} points) at {ce['gflops']:.1f} GFLOP/s single-thread "
                  f"float32 matmul = **{ce['epochs_per_s']:,.0f} epochs/s**.", ""]
        rt = c.get("ratios")
        if rt:
            pr = c.get("paired_ratios", {})
            L += ["Ratios (of the medians; in brackets the median of the ratios within each repeat): "
                  + ", ".join(f"{k} = **{_f(v)}**" + (f" [{_f(pr[k])}]" if k in pr else "") for k, v in rt.items() if v is not None), ""]
            cr = c.get("cpu_ratios")
            if cr:
                L += ["Ratios of the CPU time of this process (one thread: close to what each call would take without "
                      "other jobs on the machine): " + ", ".join(f"{k} = {_f(v)}" for k, v in cr.items() if v is not None), ""]
            prof = c.get("profile")
            if prof:
                who = {"c": "(c) fit", "d16": "(d) fit_many, K = 16"}
                kinds = list(next(iter(prof.values())))
                L += ["Where the time goes (torch.profiler, shares of the self CPU time of one call; the profiler's own per-op cost "
                      "inflates the rest a little):", ""]
                L += _table(["call"] + kinds, [[who.get(k, k)] + [f"{sh.get(n, 0):.0%}" for n in kinds] for k, sh in prof.items()])
    sw = r.get("sweep")
    if sw:
        L += ["## 64-configuration β × eps_w sweep", ""]
        if sw.get("available"):
            L += [sw["description"], ""]
            L += _table(["path", "wall time for 64 configs (s)", "model-epochs/s", "note"],
                        [["sequential `fit` calls, one thread", sw["sequential_seconds_64"], sw["sequential_model_epochs_per_s"], sw["sequential_note"]],
                         [f"`fit_many_parallel`, {sw['workers']} workers", sw["parallel_seconds_64"], sw["parallel_model_epochs_per_s"], sw.get("parallel_note", "")]])
            L += [f"Speed-up: **{sw['speedup']:.2f}×**."
                  + (f" The first pool of the process (2 members × 1 epoch, includes starting the fork server) took "
                     f"{sw['first_startup_seconds']:.1f} s, before the timed repeats." if "first_startup_seconds" in sw else "")
                  + (f" A pool start-up in the repeats (2 members × 1 epoch) took {sw['startup_seconds']:.1f} s; without it "
                     f"the speed-up would be {sw['speedup_without_startup']:.2f}× (real sweeps train hundreds of epochs per "
                     "member, so the start-up weighs less there)." if "startup_seconds" in sw else "")
                  + (f" Diverged: {', '.join(sw['diverged'])}." if sw.get("diverged") else ""), ""]
        else:
            L += [f"**Not available** ({sw.get('reason')}).", ""]
    for pname, p in (r.get("pipeline") or {}).items():
        L += [f"## Pipeline ({pname}): `moons-vae run` over params/*.yaml" + (f" with `--profile {p['profile']}`" if p.get("profile") else ""), ""]
        L += [f"Command: `{p.get('command', '')}`, measured {p.get('date', '?')} (separate run from the table above)", ""]
        rows = [[k, v["seconds"], v.get("ran"), v.get("cached"), v.get("failed")] for k, v in p["phases"].items()]
        L += _table(["phase", "wall time (s)", "experiments run", "cached", "failed"], rows)
        per = p.get("epochs_per_run") or {}
        if per and isinstance(next(iter(per.values())), dict):
            L += ["Per experiment (cold run): epochs trained, seconds inside training epochs (sum of the history's per-epoch "
                  "times; training runs only) and the runner's wall time for the whole notebook (training, evaluation, plots, "
                  "kernel reset). Pruned search trials count the epochs they ran; epochs are also given in epochs of (a)'s 1200 training points.", ""]
            L += _table(["run", "kind", "epochs", "in 1200-point epochs", "training s", "notebook s", "training share"],
                        [[k, v.get("kind", "train"), v["epochs"], v.get("point_epochs"), v.get("train_seconds"), v.get("notebook_seconds"),
                          f"{v['train_seconds'] / v['notebook_seconds']:.0%}" if v.get("notebook_seconds") and v.get("train_seconds") is not None
                          else None] for k, v in per.items()])
        L += [f"Epochs trained (training runs: len(history.json); sweeps: their rows; searches: trials with an epoch count): {p['epochs_total']}; pipeline epochs/s (cold) = "
              f"**{_f(p['pipeline_epochs_per_s'])}**" + (f"; (a) Lightning reference loop: {_f(p['a_epochs_per_s'])} epochs/s "
              f"(from {p['a_source']}) → ratio {_f(p['ratio_to_a'])}" if p.get("a_epochs_per_s") else "") + ".", ""]
        if p.get("pipeline_point_epochs_per_s"):
            L += [f"Counted in epochs of (a)'s size (1200 training points; an epoch of the dataset sweep's n = 20000 cells is 10 of them): "
                  f"{_f(p['point_epochs_total'])} → {_f(p['pipeline_point_epochs_per_s'])} per second cold"
                  + (f", {_f(p['point_ratio_to_a'])}× (a)" if p.get("point_ratio_to_a") else "") + ". The target uses the plain count.", ""]
    if r.get("pipeline") and r.get("machine"):
        L += ["The pipeline and (a) come from different runs, so this ratio compares absolute figures taken under "
              "different loads (load average at the start of run.py: "
              f"{_loads(r['machine'].get('loadavg_at_start'))}; of each pipeline run: "
              + ", ".join(f"{k} {_loads(p.get('machine', {}).get('loadavg_at_start'))}" for k, p in r["pipeline"].items()) + ").", ""]
    for pname, b in (r.get("rebuild") or {}).items():
        L += [f"## Rebuild after a one-line plots change ({pname})", "",
              f"Command: `{b.get('command', '')}`, measured {b.get('date', '?')} at commit {str(b.get('commit'))[:10]}: "
              "`bash tasks.sh report` in a checkout with a built book, before and after one line is added to "
              "`nbs/05_plots.ipynb`, and once more after it is removed.", ""]
        L += _table(["phase", "wall time (s)", "experiments re-executed", "trainings", "exit code"],
                    [[k, v["seconds"], ", ".join(v["ran"]) or "none", v.get("trainings"), v["returncode"]] for k, v in b["phases"].items()])
    ev = r.get("evaluate")
    if ev:
        L += ["## Evaluating one model", "",
              f"Command: `{ev.get('command', '')}`, measured {ev.get('date', '?')}: `evaluate` (K = 64) on the same briefly "
              f"trained models at commit {str(ev.get('baseline'))[:10]} and at {str(ev.get('commit'))[:10]}, one thread, "
              f"{ev.get('repeats')} child processes per version taken in turn; medians.", ""]
        L += _table(["model", "baseline (s)", "this commit (s)", "baseline / this", "test NLL (baseline → this)", "samples on the support"],
                    [[x["case"], x["baseline_seconds"], x["current_seconds"], f"{x['ratio']:.2f}x",
                      f"{_f(x['baseline_values'].get('test_nll'), 4)} → {_f(x['current_values'].get('test_nll'), 4)}",
                      f"{_f(x['baseline_values'].get('samples_on_support'), 4)} → {_f(x['current_values'].get('samples_on_support'), 4)}"]
                     for x in ev["rows"]])
    gr = r.get("groups")
    if gr:
        d = gr["design"]
        L += ["## Grouping the dataset sweep", "",
              f"Command: `{gr.get('command', '')}`, measured {gr.get('date', '?')} at commit {str(gr.get('commit'))[:10]}: the dataset "
              f"sweep's design ({', '.join(d['models'])}; n {d['sizes']} x noise {d['noises']} x draws {d['draws']} x seeds {d['seeds']}: "
              f"{gr['models_trained']} models, {d['steps']} gradient steps each) trained and evaluated by `run_groups` (one thread) grouped "
              f"per data draw and per data set size (`curve_groups(..., group_size)`), {gr.get('repeats')} child processes per way "
              "taken in turn; medians.", ""]
        L += _table(["grouping", "members per group (at most)", "groups", "wall time (s)"],
                    [[x["way"], x["members_per_group"], x["groups"], x["seconds"]] for x in gr["rows"]])
        L += [f"per draw / per size = **{gr['ratio']:.2f}x**; the two ways' metrics differ by at most "
              + ", ".join(f"{_f(v, 2)} ({k})" for k, v in gr["max_abs_diff"].items()) + ".", ""]
    se = r.get("search")
    if se:
        L += ["## One worker of the hyperparameter search", "",
              f"Command: `{se.get('command', '')}`, measured {se.get('date', '?')}: `run_search` ({se['model']}, {se['trials']} trials, "
              f"up to {se['max_epochs']} epochs each, a fresh SQLite study) at commit {str(se.get('baseline'))[:10]} and at "
              f"{str(se.get('commit'))[:10]}, one thread, {se.get('repeats')} child process(es) per version taken in turn; medians.", ""]
        L += _table(["baseline (s)", "this commit (s)", "baseline / this", "epochs trained", "pruned trials", "same trials in both"],
                    [[se["baseline_seconds"], se["current_seconds"], f"{se['ratio']:.2f}x", se["epochs"], se["pruned"],
                      "**yes**" if se["same_trials"] else "**no**"]])
    sa = r.get("search_at_once")
    if sa:
        L += ["## Several search trials at once", "",
              f"Command: `{sa.get('command', '')}`, measured {sa.get('date', '?')}: `run_search` ({sa['model']}, {sa['trials']} trials, "
              f"up to {sa['max_epochs']} epochs each, a fresh SQLite study), one trial at a time (commit {str(sa.get('baseline'))[:10]}) and "
              f"{sa['trials_at_once']} at once (`trials_at_once`, commit {str(sa.get('commit'))[:10]}), one thread, {sa.get('repeats')} child "
              "process(es) per version taken in turn; medians. The trials differ (TPE sees finished trials only between batches), "
              "so the best value found is shown beside the time.", ""]
        L += _table(["one at a time (s)", f"{sa['trials_at_once']} at once (s)", "ratio", "best val MSE (one at a time → at once)",
                     "epochs trained (at once)", "pruned trials (at once)"],
                    [[sa["baseline_seconds"], sa["current_seconds"], f"{sa['ratio']:.2f}x",
                      f"{_f(sa.get('baseline_best'), 5)} → {_f(sa.get('current_best'), 5)}", sa["epochs"], sa["pruned"]]])
    cb = r.get("cold_book")
    if cb:
        L += ["## The full cold book", "",
              f"Command: `{cb.get('command', '')}`, recorded {cb.get('date', '?')}: `bash tasks.sh report` in a fresh clone of commit "
              f"{str(cb.get('commit'))[:10]} (the environment installed, every experiment run at full fidelity, every page executed, the "
              f"site compiled): **{cb['seconds'] / 60:.1f} min**, {cb['experiments_ran']} experiments, exit code {cb['rc']}"
              + ("" if cb["rc"] == 0 else " (it did not finish: the time is a lower bound of a whole build)") + ". The slowest "
              "experiments (wall seconds, from `_book/runs/status.json`; two run at a time):", ""]
        L += _table(["experiment", "wall time (s)"], [[k, round(s)] for k, s in cb.get("slowest", [])])
        if cb.get("passes"):
            L += ["Where the time went: " + "; ".join(f"runner pass {i + 1} ({n} jobs) {t / 60:.1f} min" for i, (n, t) in enumerate(cb["passes"]))
                  + (f"; outside the runner (installing the environment, exporting, compiling the site) {cb['outside_runner_seconds'] / 60:.1f} min"
                     if cb.get("outside_runner_seconds") is not None else "") + ".", ""]
        work = cb.get("work") or {}
        if work:
            secs = cb.get("experiment_seconds") or {}
            rows = sorted(((k, secs.get(k) or 0.0, w) for k, w in work.items()), key=lambda r: -r[1])
            L += ["What every experiment trained (counted from its run folder: cells, points, trials or history; a gradient step is one "
                  "batch of one model) against its wall time. Two experiments run at a time and a sweep spreads over both cores, so a wall "
                  "time is roughly one core's time:", ""]
            L += _table(["experiment", "wall time (s)", "models", "epochs", "gradient steps", "wall ms per step"],
                        [[k, round(t), w["models"], w["epochs"], w["steps"], _f(1000 * t / w["steps"], 3) if w["steps"] else "–"]
                         for k, t, w in rows])
            tot = sum(w["steps"] for w in work.values())
            L += [f"In all: {sum(w['models'] for w in work.values())} models, {tot:,} gradient steps, "
                  f"{sum(t for _, t, _ in rows) / 60:.0f} min of experiment wall time.", ""]
    dk = r.get("dask")
    if dk:
        L += ["## Experiments on a Dask cluster", "",
              f"Command: `{dk.get('command', '')}`, measured {dk.get('date', '?')}: `moons-vae run` over {len(dk['params_files'])} params files "
              f"(profile {dk['profile']}) on a local Dask cluster of {dk['workers']} one-thread workers, then on {dk['workers']} local worker processes, "
              "each into fresh runs and data folders.", ""]
        L += _table(["engine", "wall time (s)"], [["Dask cluster", dk["dask_seconds"]], ["local processes", dk["local_seconds"]]])
        L += [f"local / Dask = {dk['ratio_local_to_dask']:.2f}; every run's metrics.json identical: "
              f"**{all(dk['identical_metrics'].values())}**.", ""]
    t = (r.get("targets", []) + [x for p in (r.get("pipeline") or {}).values() for x in p.get("targets", [])]
         + [x for b in (r.get("rebuild") or {}).values() for x in b.get("targets", [])] + (r.get("search") or {}).get("targets", [])
         + (r.get("search_at_once") or {}).get("targets", []) + (r.get("cold_book") or {}).get("targets", []))
    if t:
        L += ["## Targets", ""]
        L += _table(["target", "measured", "goal", "status", "margin", "note"],
                    [[x["name"], x["value"], x["goal"], f"**{x['status']}**", "–" if x["margin"] is None else f"{x['margin']:+.0%}", x.get("note", "")]
                     for x in t])
    if r.get("notes"):
        L += ["## Notes", ""] + [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(L)


def _loads(l):
    return "?" if not l else "/".join(f"{x:.2f}" for x in l)
