#!/usr/bin/env python3
"""PyTorch competitor of kernels_bench: the same ops on the same shapes and GPU, timed the same
way (CUDA events, 3 warm-ups, median of --reps). Merges our JSON (--ours) with its own numbers
into --out, with ratio = torch_ms / our_ms (> 1: we are faster) and TFLOP/s vs the bf16 dense
peak (989 TFLOP/s on H100 SXM)."""
import argparse, json, statistics
import torch
import torch.nn.functional as F

T, C, H, D, FF, V = 16384, 4096, 32, 128, 11008, 32000
PEAK_TFLOPS = 989.0


def time_ms(fn, reps):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def rnd(*shape, lo=-1.0, hi=1.0, dtype=torch.bfloat16):
    return (torch.rand(*shape, device="cuda") * (hi - lo) + lo).to(dtype)


def bench(reps):
    res = {}
    for name, K, M in [("qkv", C, 3 * C), ("gate_up", C, 2 * FF), ("down", FF, C), ("lm_head", C, V)]:
        x, w, dy = rnd(T, K), rnd(M, K, lo=-0.05, hi=0.05), rnd(T, M)
        res[f"matmul_fwd.{name}"] = time_ms(lambda: F.linear(x, w), reps)
        res[f"matmul_bwd.{name}"] = time_ms(lambda: (dy @ w, dy.t() @ x), reps)
        del x, w, dy
    for name, lengths in [("fixed4096", [4096] * 4),
                          ("longtail", [8192, 3000, 2000, 1200, 800, 500, 300, 200, 100, 92])]:
        # Per-sequence SDPA loop (flash backend), (1, H, L, D) views of the packed tensors.
        q, k, v = (rnd(sum(lengths), H, D, lo=-2, hi=2).requires_grad_() for _ in range(3))
        dout = rnd(sum(lengths), H, D)
        offs = [0]
        for L in lengths: offs.append(offs[-1] + L)
        def fwd():
            return [F.scaled_dot_product_attention(q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None],
                                                   v[a:b].transpose(0, 1)[None], is_causal=True)
                    for a, b in zip(offs[:-1], offs[1:])]
        with torch.no_grad():
            res[f"attention_fwd.{name}"] = time_ms(fwd, reps)
        outs = fwd()
        grads = [dout[a:b].transpose(0, 1)[None] for a, b in zip(offs[:-1], offs[1:])]
        res[f"attention_bwd.{name}"] = time_ms(
            lambda: torch.autograd.grad(outs, (q, k, v), grads, retain_graph=True), reps)
        try:  # PyTorch's own varlen attention, when this version has it
            from torch.nn.attention.varlen import varlen_attn
            cu = torch.tensor(offs, dtype=torch.int32, device="cuda")
            mx = max(lengths)
            with torch.no_grad():
                res[f"attention_fwd.{name}.torch_varlen"] = time_ms(
                    lambda: varlen_attn(q, k, v, cu, cu, mx, mx, is_causal=True), reps)
            o = varlen_attn(q, k, v, cu, cu, mx, mx, is_causal=True)
            res[f"attention_bwd.{name}.torch_varlen"] = time_ms(
                lambda: torch.autograd.grad(o, (q, k, v), dout, retain_graph=True), reps)
        except Exception as e:  # noqa: BLE001
            print(f"varlen_attn unavailable: {e}")
        del q, k, v, dout, outs, grads
    x = rnd(T, C, lo=-2, hi=2).requires_grad_(); w = rnd(C, lo=0.5, hi=1.5).requires_grad_(); dy = rnd(T, C)
    with torch.no_grad():
        res["rms_norm_fwd"] = time_ms(lambda: F.rms_norm(x, (C,), w, 1e-5), reps)
    y = F.rms_norm(x, (C,), w, 1e-5)
    res["rms_norm_bwd"] = time_ms(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True), reps)
    qh = rnd(T, H, D)
    pos = (torch.arange(T, device="cuda") % (T // 4)).float()
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2, device="cuda").float() / D))
    ang = torch.outer(pos, inv); emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos()[:, None].to(torch.bfloat16), emb.sin()[:, None].to(torch.bfloat16)
    def rope():
        x1, x2 = qh[..., : D // 2], qh[..., D // 2:]
        return qh * cos + torch.cat([-x2, x1], -1) * sin
    res["rope_fwd"] = time_ms(rope, reps)
    gu = rnd(T, 2 * FF, lo=-3, hi=3).requires_grad_(); sdo = rnd(T, FF)
    def swiglu():
        g, u = gu.chunk(2, -1)
        return F.silu(g) * u
    with torch.no_grad():
        res["swiglu_fwd"] = time_ms(swiglu, reps)
    so = swiglu()
    res["swiglu_bwd"] = time_ms(lambda: torch.autograd.grad(so, gu, sdo, retain_graph=True), reps)
    ids = (torch.arange(T, device="cuda") * 7919) % V
    table = rnd(V, C).requires_grad_()
    with torch.no_grad():
        res["embedding_fwd"] = time_ms(lambda: F.embedding(ids, table), reps)
    e = F.embedding(ids, table)
    res["embedding_bwd"] = time_ms(lambda: torch.autograd.grad(e, table, dy, retain_graph=True), reps)
    logits = rnd(T, V, lo=-6, hi=6).requires_grad_()
    with torch.no_grad():
        res["cross_entropy_fwd"] = time_ms(lambda: F.cross_entropy(logits.float(), ids, reduction="sum") / T, reps)
    def ce_fb():
        l = F.cross_entropy(logits.float(), ids, reduction="sum") / T
        return torch.autograd.grad(l, logits)
    res["cross_entropy_fwd_bwd"] = time_ms(ce_fb, reps)
    del logits, table, e, gu, so
    n = 1 << 27
    p = torch.nn.Parameter(rnd(n, dtype=torch.float32)); p.grad = rnd(n, lo=-0.01, hi=0.01, dtype=torch.float32)
    gb = rnd(n, lo=-0.01, hi=0.01); pb = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    opt = torch.optim.AdamW([p], lr=1e-4, weight_decay=0.01, fused=True)
    def adam():
        p.grad.copy_(gb)  # bf16 grad -> fp32, as ours reads bf16 grads directly
        opt.step(); pb.copy_(p.detach())
    res["adamw_step"] = time_ms(adam, reps)
    res["grad_norm_sq"] = time_ms(lambda: torch.linalg.vector_norm(gb, dtype=torch.float32), reps)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    ours = json.load(open(args.ours))
    torch_ms = bench(args.reps)
    rows = []
    for r in ours["results"]:
        row = dict(r)
        row["tflops"] = r["flop"] / r["ms"] / 1e9 if r["flop"] else None
        row["pct_peak"] = 100 * row["tflops"] / PEAK_TFLOPS if row["tflops"] else None
        row["gbps"] = r["bytes"] / r["ms"] / 1e6 if r["bytes"] else None
        row["torch_ms"] = torch_ms.get(r["op"])
        row["ratio"] = row["torch_ms"] / r["ms"] if row["torch_ms"] else None
        row["torch_varlen_ms"] = torch_ms.get(r["op"] + ".torch_varlen")
        rows.append(row)
    merged = {"device": ours["device"], "git": ours["git"], "torch": torch.__version__,
              "torch_device": torch.cuda.get_device_name(), "peak_tflops": PEAK_TFLOPS,
              "formulas": {"matmul": "fwd 2·N·K·M, bwd 4·N·K·M",
                           "attention": "fwd Σ_seq 4·H·D·L(L+1)/2 (causal), bwd 2.5× fwd",
                           "ratio": "torch_ms / our_ms"},
              "results": rows}
    json.dump(merged, open(args.out, "w"), indent=1)
    print(f"{'op':28s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s} {'TFLOP/s':>8s} {'%peak':>6s} {'GB/s':>7s} {'tvarlen':>8s}")
    f = lambda v, fmt: (fmt % v) if v is not None else "-"
    for r in rows:
        print(f"{r['op']:28s} {r['ms']:9.3f} {f(r['torch_ms'], '%9.3f'):>9s} {f(r['ratio'], '%6.2f'):>6s} "
              f"{f(r['tflops'], '%8.1f'):>8s} {f(r['pct_peak'], '%6.1f'):>6s} {f(r['gbps'], '%7.0f'):>7s} "
              f"{f(r['torch_varlen_ms'], '%8.3f'):>8s}")


if __name__ == "__main__":
    main()
