"""Speed of fit_many against fit, side by side in one process on one thread (tuned config: encoder 8, latent 128,
decoder 128, batch 256, 2000 points -> 1200 training points). Every run trains a fixed number of epochs (no early stop).
Rates are model-epochs per second of wall time and per second of this process's CPU time (the second is steadier
when other work shares the machine). With --parallel, fit_many_parallel(workers=2) is timed too (wall time,
including starting the worker processes from an already running forkserver).
Usage (from the repository root): .venv/bin/python benchmarks/bench_vectorized.py [--epochs 20] [--ks 8,16,32,64] [--repeats 3] [--kind vae] [--parallel]"""
import argparse, json, os, time

import torch

from moons_vae.data import load_moons
from moons_vae.train import RunConfig, fit, make_model
from moons_vae.vectorized import fit_many, fit_many_parallel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20); ap.add_argument("--ks", default="8,16,32,64")
    ap.add_argument("--repeats", type=int, default=3); ap.add_argument("--kind", default="vae")
    ap.add_argument("--parallel", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_moons(2000, 0.15, 42, cache_dir=None)
    E, ks = a.epochs, [int(k) for k in a.ks.split(",")]
    cfg = lambda s: RunConfig(model=a.kind, device="cpu", max_epochs=E, min_epochs=E, patience=10**6, seed=s,
                              lr=1e-3 * (1 + s % 3), beta=0.5 + s % 4, eps_w=0.1 * (1 + s % 2))

    def timed(f, n_model_epochs):
        w, c = time.perf_counter(), time.process_time()
        f()
        return n_model_epochs / (time.perf_counter() - w), n_model_epochs / (time.process_time() - c)

    fit_many([cfg(s) for s in range(2)], data, progress=False)            # warm-up of both paths
    fit(make_model(cfg(0)), data, cfg(0), progress=False)
    if a.parallel:   # starts the forkserver (one import of torch and the package), as the first call of a sweep would
        fit_many_parallel([cfg(s) for s in range(2)], data, workers=2, progress=False)
    rows = []
    for rep in range(a.repeats):
        base, base_cpu = timed(lambda: [fit(make_model(cfg(s)), data, cfg(s), progress=False) for s in range(3)], 3 * E)
        rows.append(dict(rep=rep, what="fit, one after another", K=1, per_wall_s=round(base, 1), per_cpu_s=round(base_cpu, 1)))
        for K in ks:
            r, rc = timed(lambda: fit_many([cfg(s) for s in range(K)], data, progress=False), K * E)
            rows.append(dict(rep=rep, what="fit_many", K=K, per_wall_s=round(r, 1), per_cpu_s=round(rc, 1),
                             ratio_wall=round(r / base, 2), ratio_cpu=round(rc / base_cpu, 2)))
        if a.parallel:
            K = max(ks)
            r, _ = timed(lambda: fit_many_parallel([cfg(s) for s in range(K)], data, workers=2, progress=False), K * E)
            rows.append(dict(rep=rep, what="fit_many_parallel(workers=2)", K=K, per_wall_s=round(r, 1), ratio_wall=round(r / base, 2)))
        for row in rows[-(len(ks) + 1 + a.parallel):]: print(json.dumps(row), flush=True)
    print("load average at the end:", os.getloadavg())


if __name__ == "__main__":
    main()
