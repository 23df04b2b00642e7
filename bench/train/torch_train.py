#!/usr/bin/env python3
"""PyTorch competitor of bench/train/train_bench: the same LLaMA model, micro-batches and
optimizer step on the same GPU, then one merged JSON with the ratio ours / PyTorch.

PyTorch setup (as issue 5 asks): fp32 master weights, torch.autocast(bfloat16), eager mode,
F.rms_norm, rotate-half RoPE, attention as a per-sequence loop of F.scaled_dot_product_attention
(is_causal, enable_gqa: the flash backend), cross-entropy over fp32-upcast logits, fused AdamW
and clip_grad_norm_(1.0). Timing: median of CUDA-event-timed optimizer steps after warm-up; the
FLOPs are ours (the same formula, docs/training.md). Usage:
  python3 bench/train/torch_train.py --ours ours.json --out train_bench.json [--steps 5]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class Llama(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, f, v = cfg["hidden"], cfg["ffn_hidden"], cfg["vocab_size"]
        self.cfg = cfg
        d = c // cfg["num_heads"]
        qw, kvw = cfg["num_heads"] * d, cfg["num_kv_heads"] * d
        std, rstd = 0.02, 0.02 / math.sqrt(2 * cfg["num_layers"])

        def p(*shape, s=std):
            return torch.nn.Parameter(torch.randn(*shape, device="cuda") * s)

        self.embed = p(v, c)
        self.layers = torch.nn.ModuleList()
        for _ in range(cfg["num_layers"]):
            layer = torch.nn.Module()
            layer.n1 = torch.nn.Parameter(torch.ones(c, device="cuda"))
            layer.q, layer.k, layer.v = p(qw, c), p(kvw, c), p(kvw, c)
            layer.o = p(c, qw, s=rstd)
            layer.n2 = torch.nn.Parameter(torch.ones(c, device="cuda"))
            layer.gate_up, layer.down = p(2 * f, c), p(c, f, s=rstd)
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(torch.ones(c, device="cuda"))
        self.head = p(v, c)

    def forward(self, ids, targets, cu, cos, sin):
        cfg = self.cfg
        h, hkv = cfg["num_heads"], cfg["num_kv_heads"]
        c = cfg["hidden"]
        d = c // h
        eps = cfg["norm_eps"]
        x = F.embedding(ids, self.embed)

        def rope(t):
            half = d // 2
            rot = torch.cat((-t[..., half:], t[..., :half]), dim=-1)
            return (t * cos + rot * sin).to(t.dtype)

        for layer in self.layers:
            n = F.rms_norm(x, (c,), layer.n1, eps)
            q = rope(F.linear(n, layer.q).view(-1, h, d))
            k = rope(F.linear(n, layer.k).view(-1, hkv, d))
            v = F.linear(n, layer.v).view(-1, hkv, d)
            outs = []
            for b in range(len(cu) - 1):
                s, e = cu[b], cu[b + 1]
                outs.append(F.scaled_dot_product_attention(
                    q[s:e].transpose(0, 1)[None], k[s:e].transpose(0, 1)[None],
                    v[s:e].transpose(0, 1)[None], is_causal=True, enable_gqa=True)[0].transpose(0, 1))
            a = torch.cat(outs).reshape(-1, h * d)
            x = x + F.linear(a, layer.o)
            n = F.rms_norm(x, (c,), layer.n2, eps)
            gate, up = F.linear(n, layer.gate_up).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, layer.down)
        x = F.rms_norm(x, (c,), self.norm, eps)
        logits = F.linear(x, self.head)
        return F.cross_entropy(logits.float(), targets, reduction="mean")


def config_of(name):
    # The same configs as src/model/config.cpp (vocab: GPT-2's 50257 padded to 50304).
    base = {"vocab_size": 50304, "norm_eps": 1e-5, "rope_theta": 10000.0}
    if name == "1b":
        return dict(base, num_layers=22, hidden=2048, num_heads=32, num_kv_heads=4, ffn_hidden=5632)
    if name == "7b-4l":
        return dict(base, num_layers=4, hidden=4096, num_heads=32, num_kv_heads=32,
                    ffn_hidden=11008)
    raise ValueError(name)


def run_case(case, steps, warmup):
    cfg = config_of(case["model"])
    lengths = case["lengths"]
    torch.manual_seed(0)
    model = Llama(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=True)
    g = torch.Generator(device="cuda").manual_seed(1)
    total = sum(lengths)
    ids = torch.randint(0, cfg["vocab_size"], (total,), device="cuda", generator=g)
    targets = torch.randint(0, cfg["vocab_size"], (total,), device="cuda", generator=g)
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    d = cfg["hidden"] // cfg["num_heads"]
    pos = torch.cat([torch.arange(n, device="cuda") for n in lengths]).float()
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, d, 2, device="cuda").float() / d))
    ang = pos[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)[:, None, :]
    cos, sin = emb.cos(), emb.sin()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, targets, cu, cos, sin)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    torch.cuda.reset_peak_memory_stats()
    first = step().item()
    expected = math.log(cfg["vocab_size"]) + 0.5 * 0.0004 * cfg["hidden"]  # as train_bench
    assert abs(first - expected) < 0.3, f"initial loss {first}, expected {expected}"
    for _ in range(warmup - 1):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    ms = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated()
    del model, opt
    torch.cuda.empty_cache()
    return {"step_ms": ms, "peak_memory_bytes": peak, "first_loss": first}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    with open(args.ours) as f:
        ours = json.load(f)
    peak = ours["peak_flops"]
    rows = []
    for case in ours["cases"]:
        t0 = time.time()
        try:
            theirs = run_case(case, args.steps, args.warmup)
        except torch.cuda.OutOfMemoryError as e:
            theirs = {"error": "out of memory: " + str(e).splitlines()[0]}
            torch.cuda.empty_cache()
        row = {k: case[k] for k in ("model", "layout", "tokens", "sequences", "flops_per_step")}
        row["ours"] = {k: case[k] for k in ("step_ms", "tokens_per_s", "model_tflops_per_s", "mfu",
                                            "peak_memory_bytes")}
        if "error" in theirs:
            row["torch_eager_sdpa_loop"] = theirs
        else:
            s = theirs["step_ms"] / 1e3
            row["torch_eager_sdpa_loop"] = {
                "step_ms": theirs["step_ms"], "tokens_per_s": case["tokens"] / s,
                "model_tflops_per_s": case["flops_per_step"] / s / 1e12,
                "mfu": case["flops_per_step"] / s / peak if peak else 0,
                "peak_memory_bytes": theirs["peak_memory_bytes"]}
            row["speedup_ours_over_torch"] = theirs["step_ms"] / case["step_ms"]
            row["memory_ours_over_torch"] = case["peak_memory_bytes"] / theirs["peak_memory_bytes"]
        rows.append(row)
        t = row["torch_eager_sdpa_loop"]
        print(f"{case['model']:6} {case['layout']:8} ours {case['step_ms']:8.1f} ms "
              f"MFU {100 * case['mfu']:5.1f}% | torch "
              + (f"{t['step_ms']:8.1f} ms MFU {100 * t['mfu']:5.1f}% | x{row['speedup_ours_over_torch']:.2f}"
                 if "error" not in t else t["error"]) + f"  ({time.time() - t0:.0f} s)", flush=True)
    result = {"git": ours["git"], "device": ours["device"], "torch": torch.__version__,
              "torch_device": torch.cuda.get_device_name(), "peak_flops": peak,
              "timing": {"ours": ours["timing"], "torch": "median CUDA-event time of an optimizer step"},
              "mfu_formula": "(6*N_matmul*T + 6*L*H*D*sum n(n+1)) / step_time / peak (docs/training.md)",
              "cases": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
