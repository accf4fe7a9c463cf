#!/usr/bin/env python
"""Where the time of `moons_vae.train.fit` goes, and what candidate library changes would gain, measured side by side.

1. A per-phase breakdown of one epoch (simple timing of each piece of fit's inner loop, repeated many times).
2. Variants of fit's loop, each timed interleaved with `fit` itself in one process on one thread, median of repeats:
     replica      fit's loop re-implemented here (checks the replica matches fit: same final val loss)
     direct_adam  one persistent grad buffer per parameter zeroed with _foreach_zero_, and torch._fused_adam_
                  called directly (skips Optimizer.step's Python bookkeeping, ~0.1 ms per step)
     fused_kl     reparametrisation and KL in one autograd.Function with a hand-written backward
                  (one exp instead of two, fewer elementwise passes over (batch, latent) forward and backward)
     thin_head    thin-to-wide Linear layers (the 8 -> 2*latent encoder head) through an autograd.Function whose
                  backward computes the transposed products (x.T @ gy).T and (W.T @ gy.T).T (~4x faster matmuls)
     adam+thin    direct_adam and thin_head
     all          direct_adam, thin_head and fused_kl
     no_val       fit without the per-epoch validation forward (not a proposal: shows what validation costs)
3. Optionally (--profiler) torch.profiler's table of the most expensive ops of fit.

    .venv/bin/python benchmarks/profile_fit.py [--config tuned|small] [--epochs 40] [--repeats 5] [--profiler]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

from moons_vae.data import batch_slices, load_moons  # noqa: E402
from moons_vae.loss import LossOutput, model_loss  # noqa: E402
from moons_vae.train import HISTORY_LOSS_KEYS, RunConfig, fit, make_model  # noqa: E402

CONFIGS = {"tuned": dict(encoder_hidden=8, latent_dim=128, decoder_hidden=128),
           "small": dict(encoder_hidden=8, latent_dim=8, decoder_hidden=128)}


class ReparamKL(torch.autograd.Function):
    "z = mu + eps_w * exp(lv/2) * noise and per-sample KL(N(mu, e^lv) || N(0, I)), with one exp and a hand-written backward."
    @staticmethod
    def forward(ctx, mu, lv, noise, eps_w):
        std = torch.exp(0.5 * lv)
        en = noise * eps_w
        z = torch.addcmul(mu, std, en)
        var = std * std
        kl = 0.5 * (var + mu * mu - lv - 1).sum(-1)
        ctx.save_for_backward(mu, std, en, var)
        return z, kl

    @staticmethod
    def backward(ctx, gz, gkl):
        mu, std, en, var = ctx.saved_tensors
        g = gkl.unsqueeze(-1)
        gmu = torch.addcmul(gz, g, mu)
        glv = 0.5 * (gz * en * std + g * (var - 1))
        return gmu, glv, None, None


class ThinLinear(torch.autograd.Function):
    """x @ W.T + b whose backward computes the transposed products when in_features < out_features:
    (x.T @ gy).T and (W.T @ gy.T).T run ~4x faster than gy.T @ x and gy @ W for the thin 8 -> 256 encoder head."""
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return torch.addmm(b, x, W.t())

    @staticmethod
    def backward(ctx, gy):
        x, W = ctx.saved_tensors
        if W.shape[1] < W.shape[0]:
            gx = (W.t() @ gy.t()).t() if ctx.needs_input_grad[0] else None
            gW = (x.t() @ gy).t().contiguous()
        else:
            gx = gy @ W if ctx.needs_input_grad[0] else None
            gW = gy.t() @ x
        return gx, gW, gy.sum(0)


def thin_mlp(seq, x):
    "Run an nn.Sequential of Linear/ReLU with ThinLinear for the thin-to-wide layers (4 * in <= out, out >= 64)."
    for m in seq:
        thin = isinstance(m, torch.nn.Linear) and 4 * m.in_features <= m.out_features and m.out_features >= 64
        x = ThinLinear.apply(x, m.weight, m.bias) if thin else m(x)
    return x


def thin_forward_loss(model, x, noise, beta, fused_kl=False):
    "The VAE's forward and elbo_loss with ThinLinear layers (plain VAE only)."
    mu, lv = thin_mlp(model.encoder.net, x).split(model.config.latent_dim, dim=-1)
    if fused_kl:
        z, kl = ReparamKL.apply(mu, lv, noise, model.config.eps_w)
        kl = kl.mean()
    else:
        z = mu + model.config.eps_w * torch.exp(0.5 * lv) * noise
        kl = (-0.5 * (1 + lv - mu.pow(2) - lv.exp()).sum(-1)).mean()
    recon = (thin_mlp(model.decoder.net, z) - x).pow(2).sum(-1).mean()
    return LossOutput(recon + beta * kl, recon, kl)


def fused_forward_loss(model, x, noise, beta):
    "The VAE's forward and elbo_loss with the reparametrisation and KL fused (plain VAE only)."
    mu, lv = model.encoder(x)
    z, kl = ReparamKL.apply(mu, lv, noise, model.config.eps_w)
    recon = (model.decoder(z) - x).pow(2).sum(-1).mean()
    kl = kl.mean()
    return LossOutput(recon + beta * kl, recon, kl)


def loop(model, data, cfg: RunConfig, *, direct_adam=False, fused_kl=False, thin=False, validate=True) -> list[dict]:
    "fit's loop (Adam, plateau schedule, clipping, history, best state) with the candidate changes switchable."
    dev = torch.device("cpu")
    train, val = data.tensors("train"), data.tensors("val")
    n, latent = len(train["x"]), model.config.latent_dim
    gen = torch.Generator().manual_seed(cfg.seed)
    val_noise = torch.randn(len(val["x"]), latent, generator=torch.Generator().manual_seed(cfg.seed + 1))
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, fused=True)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.lr_factor, patience=cfg.lr_patience)
    if direct_adam:
        for p in params: p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        m1, m2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
        step = torch.zeros((), dtype=torch.float32)
    if thin: fwd = lambda x, noise: thin_forward_loss(model, x, noise, cfg.beta, fused_kl)
    elif fused_kl: fwd = lambda x, noise: fused_forward_loss(model, x, noise, cfg.beta)
    else: fwd = lambda x, noise: model_loss(model(x, None, noise=noise), {"x": x}, cfg.beta)
    best, best_state, since_best, history = math.inf, None, 0, []
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        sums = torch.zeros(3)
        for idx in batch_slices(n, cfg.batch_size, gen, dev):
            x = train["x"][idx]
            noise = torch.randn(len(idx), latent, generator=gen)
            loss = fwd(x, noise)
            if direct_adam:
                torch._foreach_zero_(grads)
                loss.total.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
                step.add_(1)
                torch._fused_adam_(params, grads, m1, m2, [], [step] * len(params), lr=opt.param_groups[0]["lr"], beta1=0.9,
                                   beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
            else:
                opt.zero_grad(set_to_none=True)
                loss.total.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
                opt.step()
            sums += torch.stack([loss.total, loss.recon, loss.kl]).detach() * len(idx)
        model.eval()
        if validate:
            with torch.no_grad():
                v = fwd(val["x"], val_noise)
            vals = torch.stack([v.total, v.recon, v.kl]).tolist()
        else: vals = [0.0, 0.0, 0.0]
        values = dict(zip(HISTORY_LOSS_KEYS, (sums / n).tolist() + vals))
        sched.step(values["val_loss"])
        history.append(dict(epoch=epoch, **values, lr=opt.param_groups[0]["lr"], seconds=time.perf_counter() - t0))
        if values["val_loss"] < best:
            best, since_best = values["val_loss"], 0
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else: since_best += 1
    model.load_state_dict(best_state)
    return history


def breakdown(data, cfg: RunConfig, n: int = 1000) -> list[tuple[str, float, int]]:
    "(phase, ms per call, calls per epoch) for the pieces of one epoch of fit."
    model = make_model(cfg)
    train, val = data.tensors("train"), data.tensors("val")
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    idx = batch_slices(len(train["x"]), cfg.batch_size, gen)[0]
    b = {k: v[idx] for k, v in train.items()}
    L = cfg.latent_dim
    noise, vnoise = torch.randn(len(idx), L), torch.randn(len(val["x"]), L)
    steps = math.ceil(len(train["x"]) / cfg.batch_size)

    def rep(f):
        for _ in range(max(20, n // 20)): f()
        t = time.perf_counter()
        for _ in range(n): f()
        return (time.perf_counter() - t) / n * 1e3

    def fwd_bwd():
        loss = model_loss(model(b["x"], None, noise=noise), b, cfg.beta)
        opt.zero_grad(set_to_none=True); loss.total.backward()

    def val_fwd():
        with torch.no_grad(): v = model_loss(model(val["x"], None, noise=vnoise), val, cfg.beta)
        return torch.stack([v.total, v.recon, v.kl]).tolist()

    out = model(b["x"], None, noise=noise)
    rows = [("shuffle (batch_slices)", rep(lambda: batch_slices(len(train["x"]), cfg.batch_size, gen)), 1),
            ("index the batch (x, y, t)", rep(lambda: {k: v[idx] for k, v in train.items()}), steps),
            ("draw the step's noise (randn)", rep(lambda: torch.randn(len(idx), L, generator=gen)), steps),
            ("forward (model)", rep(lambda: model(b["x"], None, noise=noise)), steps),
            ("loss (model_loss)", rep(lambda: model_loss(out, b, cfg.beta)), steps),
            ("forward + loss + zero_grad + backward", rep(fwd_bwd), steps)]
    fwd_bwd()
    rows += [("clip_grad_norm_ (foreach)", rep(lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)), steps),
             ("Adam step (fused)", rep(opt.step), steps),
             ("validation forward + loss + tolist", rep(val_fwd), 1),
             ("best-state clone", rep(lambda: {k: t.detach().clone() for k, t in model.state_dict().items()}), 1)]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", choices=list(CONFIGS), default="tuned", help="model size (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=40, help="epochs per timed run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats, median reported (default: %(default)s)")
    p.add_argument("--profiler", action="store_true", help="also print torch.profiler's top ops of fit")
    a = p.parse_args(argv)
    if a.epochs < 1 or a.repeats < 1: p.error("--epochs and --repeats must be >= 1")
    torch.set_num_threads(1)
    data = load_moons(2000, 0.15, 42, cache_dir=None)
    cfg = RunConfig(device="cpu", min_epochs=a.epochs, max_epochs=a.epochs, patience=10**9, **CONFIGS[a.config])

    print(f"config {a.config}: {CONFIGS[a.config]}, {a.epochs} epochs, one thread, torch {torch.__version__}\n")
    print("1. one epoch of fit, piece by piece (ms per call x calls per epoch = ms per epoch):")
    rows = breakdown(data, cfg)
    total = 0.0
    for name, ms, k in rows:
        if name.startswith("forward (model)") or name.startswith("loss ("): print(f"   {name:42s} {ms:7.3f} ms x {k}   (part of the next line)"); continue
        total += ms * k
        print(f"   {name:42s} {ms:7.3f} ms x {k} = {ms * k:6.2f} ms")
    print(f"   {'sum':42s} {'':16s} {total:6.2f} ms per epoch = {1e3 / total:.0f} epochs/s\n")

    variants = {
        "fit": lambda: fit(make_model(cfg), data, cfg, progress=False),
        "replica": lambda: loop(make_model(cfg), data, cfg),
        "direct_adam": lambda: loop(make_model(cfg), data, cfg, direct_adam=True),
        "fused_kl": lambda: loop(make_model(cfg), data, cfg, fused_kl=True),
        "thin_head": lambda: loop(make_model(cfg), data, cfg, thin=True),
        "adam+thin": lambda: loop(make_model(cfg), data, cfg, direct_adam=True, thin=True),
        "all": lambda: loop(make_model(cfg), data, cfg, direct_adam=True, fused_kl=True, thin=True),
        "no_val": lambda: loop(make_model(cfg), data, cfg, validate=False),
    }
    warm = RunConfig.from_dict({**cfg.to_dict(), "min_epochs": 3, "max_epochs": 3})
    fit(make_model(warm), data, warm, progress=False); loop(make_model(warm), data, warm, direct_adam=True, fused_kl=True, thin=True)
    times, final = {k: [] for k in variants}, {}
    keys = list(variants)
    for r in range(a.repeats):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter(); h = variants[k](); times[k].append(time.perf_counter() - t)
            final[k] = h[-1]["val_loss"]
    base = statistics.median(times["fit"])
    print(f"2. variants of fit's loop, median of {a.repeats} interleaved repeats:")
    print(f"   {'variant':12s} {'epochs/s':>9s} {'vs fit':>7s}  final val loss (same seed; replica must equal fit)")
    for k in keys:
        med = statistics.median(times[k])
        print(f"   {k:12s} {a.epochs / med:9.1f} {base / med:6.2f}x  {final[k]:.6f}")

    if a.profiler:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fit(make_model(cfg), data, cfg, progress=False)
        print("\n3. torch.profiler, fit, ops by self CPU time:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return 0


if __name__ == "__main__":
    sys.exit(main())
