#!/usr/bin/env python3
"""PyTorch competitors of bench/train/train_bench: the same LLaMA model, micro-batch lengths and
optimizer step on the same GPU, in five variants, then one merged JSON with ratios ours / PyTorch.

Common setup (as issue 5 asks): fp32 master weights, torch.autocast(bfloat16), F.rms_norm,
rotate-half RoPE, cross-entropy over fp32-upcast logits, fused AdamW, clip_grad_norm_(1.0).
Variants (attention x execution):
  eager_sdpa_loop     eager; attention = per-sequence F.scaled_dot_product_attention loop
                      (is_causal, enable_gqa: the flash backend)
  eager_varlen        eager; attention = torch.nn.attention.varlen.varlen_attn over the packed
                      batch (cu_seqlens; flash varlen kernel), falling back to
                      aten._flash_attention_forward where that module is missing
  compile_sdpa_loop   torch.compile (inductor, dynamic=False) of every decoder layer's
  compile_varlen      non-attention part and of the head + loss (regional compilation: one compiled
                      graph serves all layers, cases and both attention variants); attention runs
                      between the compiled regions as in the eager variants (inductor would call
                      the same flash kernels as extern kernels)
  compile_cudnn_loop  as compile_sdpa_loop with SDPA's cuDNN backend forced (sdpa_kernel(
                      SDPBackend.CUDNN_ATTENTION)): the fused cuDNN engine our default calls
"torch best" = the variant with the shortest step per case. Every variant starts from the same
parameters; their first-step losses must agree (validation) and be ≈ ln V + σ²/2. Timing: median
of CUDA-event-timed optimizer steps after warm-up; FLOPs are ours (docs/training.md). Usage:
  python3 bench/train/torch_train.py --ours ours.json --out train_bench.json [--steps 5]
  [--torch-from earlier_train_bench.json: reuse its PyTorch numbers, measure nothing]
"""
import argparse
import ctypes
import functools
import inspect
import json
import math
import os
import time

import torch
import torch.nn.functional as F

VARIANTS = ("eager_sdpa_loop", "eager_varlen", "compile_sdpa_loop", "compile_varlen",
            "compile_cudnn_loop")


# ---------------------------------------------------------------- attention implementations
def attention_sdpa_loop(q, k, v, batch):
    """q (T, H, D), k, v (T, Hkv, D) -> (T, H, D); one causal SDPA call per sequence."""
    outs = []
    for s, e in zip(batch["cu_list"][:-1], batch["cu_list"][1:]):
        outs.append(F.scaled_dot_product_attention(
            q[s:e].transpose(0, 1)[None], k[s:e].transpose(0, 1)[None],
            v[s:e].transpose(0, 1)[None], is_causal=True, enable_gqa=True)[0].transpose(0, 1))
    return torch.cat(outs)


def attention_cudnn_loop(q, k, v, batch):
    """The SDPA loop with PyTorch's cuDNN attention backend forced (the engine ours calls)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return attention_sdpa_loop(q, k, v, batch)


def make_varlen_attention():
    """Returns (fn(q, k, v, batch) -> out, description) for PyTorch's varlen flash attention."""
    try:
        from torch.nn.attention.varlen import varlen_attn
        params = inspect.signature(varlen_attn).parameters
        kw = {}
        if "is_causal" in params:
            kw["is_causal"] = True
        elif "window_size" in params:
            kw["window_size"] = (-1, 0)  # causal: no keys to the right of the query
        else:
            raise ImportError("varlen_attn has neither is_causal nor window_size")
        if "enable_gqa" in params:
            kw["enable_gqa"] = True

        def call(q, k, v, cu, max_len):
            return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kw)
        name = "torch.nn.attention.varlen.varlen_attn(" + ", ".join(
            f"{a}={b}" for a, b in kw.items()) + ")"
    except ImportError:
        def call(q, k, v, cu, max_len):
            return torch.ops.aten._flash_attention_forward(
                q, k, v, cu, cu, max_len, max_len, 0.0, True, False)[0]
        name = "torch.ops.aten._flash_attention_forward(cum_seq_q=cu, is_causal=True)"

    def native(q, k, v, batch):
        return call(q, k, v, batch["cu"], batch["max_len"])

    def repeated(q, k, v, batch):  # GQA by repeating kv heads when the kernel lacks it
        rep = q.shape[1] // k.shape[1]
        return call(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), batch["cu"],
                    batch["max_len"])

    # Pick the first form that matches the SDPA loop on a small GQA varlen batch (fwd and grads).
    lengths = [5, 130, 64, 300]
    batch = make_batch(lengths)
    g = torch.Generator(device="cuda").manual_seed(7)
    t = sum(lengths)
    mk = lambda h: torch.randn(t, h, 64, device="cuda", dtype=torch.bfloat16,  # noqa: E731
                               generator=g).requires_grad_()
    q, k, v = mk(8), mk(2), mk(2)
    ref = attention_sdpa_loop(q, k, v, batch)
    ref_grads = torch.autograd.grad(ref.float().square().sum(), (q, k, v))
    errors = []
    for fn, how in ((native, "native GQA"), (repeated, "kv heads repeated")):
        try:
            out = fn(q, k, v, batch)
            grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
            err = max([(out.float() - ref.float()).abs().max().item()]
                      + [(a.float() - b.float()).abs().max().item() / (b.float().abs().max().item() + 1e-6)
                         for a, b in zip(grads, ref_grads)])
            if err < 5e-2:
                return fn, f"{name}, {how}"
            errors.append(f"{how}: max error {err:.3g}")
        except Exception as e:  # noqa: BLE001 (record why a form is unusable, try the next)
            errors.append(f"{how}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    raise RuntimeError("no usable varlen attention: " + "; ".join(errors))


def make_batch(lengths):
    cu_list = [0]
    for n in lengths:
        cu_list.append(cu_list[-1] + n)
    return {"cu_list": cu_list, "cu": torch.tensor(cu_list, device="cuda", dtype=torch.int32),
            "max_len": max(lengths)}


# ---------------------------------------------------------------- model (functional pieces)
def rope(t, cos, sin):
    half = t.shape[-1] // 2
    rot = torch.cat((-t[..., half:], t[..., :half]), dim=-1)
    return (t * cos + rot * sin).to(t.dtype)


def layer_pre(x, n1, wq, wk, wv, cos, sin, h: int, hkv: int, eps: float):
    """x (T, C) -> q (T, H, D), k, v (T, Hkv, D): norm, projections, RoPE."""
    c = x.shape[-1]
    d = wq.shape[0] // h
    n = F.rms_norm(x, (c,), n1, eps)
    q = rope(F.linear(n, wq).view(-1, h, d), cos, sin)
    k = rope(F.linear(n, wk).view(-1, hkv, d), cos, sin)
    v = F.linear(n, wv).view(-1, hkv, d)
    return q, k, v


def layer_post(x, a, wo, n2, wgu, wd, eps: float):
    """x (T, C), attention output a (T, H, D) -> next x (T, C): o-proj, residual, SwiGLU MLP."""
    c = x.shape[-1]
    x = x + F.linear(a.reshape(a.shape[0], -1), wo)
    n = F.rms_norm(x, (c,), n2, eps)
    gate, up = F.linear(n, wgu).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, wd)


def head_loss(x, wn, wh, targets, eps: float):
    x = F.rms_norm(x, (x.shape[-1],), wn, eps)
    return F.cross_entropy(F.linear(x, wh).float(), targets, reduction="mean")


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

    def forward(self, ids, targets, batch, cos, sin, attention, fns):
        pre, post, head = fns
        cfg = self.cfg
        h, hkv, eps = cfg["num_heads"], cfg["num_kv_heads"], cfg["norm_eps"]
        x = F.embedding(ids, self.embed)
        for L in self.layers:
            q, k, v = pre(x, L.n1, L.q, L.k, L.v, cos, sin, h, hkv, eps)
            x = post(x, attention(q, k, v, batch), L.o, L.n2, L.gate_up, L.down, eps)
        return head(x, self.norm, self.head, targets, eps)


def config_of(name):
    # The same configs as src/model/config.cpp (vocab: GPT-2's 50257 padded to 50304).
    base = {"vocab_size": 50304, "norm_eps": 1e-5, "rope_theta": 10000.0}
    if name == "1b":
        return dict(base, num_layers=22, hidden=2048, num_heads=32, num_kv_heads=4, ffn_hidden=5632)
    if name == "7b-4l":
        return dict(base, num_layers=4, hidden=4096, num_heads=32, num_kv_heads=32,
                    ffn_hidden=11008)
    raise ValueError(name)


EAGER_FNS = (layer_pre, layer_post, head_loss)
COMPILED_FNS = None  # built on first use: compiling is minutes of work only a compile variant needs


def compiled_fns():
    global COMPILED_FNS
    if COMPILED_FNS is None:
        COMPILED_FNS = tuple(torch.compile(f, dynamic=False) for f in EAGER_FNS)
    return COMPILED_FNS


# ---------------------------------------------------------------- board energy
class EnergyCounter:
    """The board's energy counter through NVML (ctypes, as train_bench reads it); joules() is
    None where the driver library or the counter is missing."""

    def __init__(self):
        self.nvml, self.device = None, ctypes.c_void_p()
        try:
            nvml = ctypes.CDLL("libnvidia-ml.so.1")
            if nvml.nvmlInit_v2() != 0:
                return
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            found = False
            if all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
                # As train_bench: the GPU by its PCI address, "domain:bus:device.function" in hex.
                bus = f"{props.pci_domain_id:04x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
                found = nvml.nvmlDeviceGetHandleByPciBusId_v2(
                    bus.encode(), ctypes.byref(self.device)) == 0
            count = ctypes.c_uint(0)
            if (not found and "CUDA_VISIBLE_DEVICES" not in os.environ
                    and nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 and count.value == 1):
                # One GPU on the host and none hidden: NVML's index 0 is this one.
                found = nvml.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(self.device)) == 0
            if found:
                self.nvml = nvml
                if self.joules() is None:
                    self.nvml = None
        except (OSError, AttributeError, TypeError, ValueError):
            self.nvml = None

    def joules(self):
        if self.nvml is None:
            return None
        mj = ctypes.c_ulonglong()
        if self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.device, ctypes.byref(mj)) != 0:
            return None
        return mj.value / 1e3


@functools.lru_cache(maxsize=None)
def energy_counter():
    return EnergyCounter()  # one per process, made at the first timed variant (CUDA is up)


# ---------------------------------------------------------------- one case
def time_variant(model, params0, ids, targets, batch, cos, sin, attention, fns, steps, warmup):
    with torch.no_grad():
        for p, p0 in zip(model.parameters(), params0):
            p.copy_(p0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, targets, batch, cos, sin, attention, fns)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    first = step().item()  # compiles, for the compile variants
    first_s = time.time() - t0
    for _ in range(warmup - 1):
        step()
    torch.cuda.synchronize()
    joules0, wall0 = energy_counter().joules(), time.time()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    joules1, wall1 = energy_counter().joules(), time.time()
    times.sort()
    peak = torch.cuda.max_memory_allocated()
    opt.zero_grad(set_to_none=True)
    del opt
    r = {"step_ms": times[len(times) // 2], "peak_memory_bytes": peak, "first_loss": first,
         "first_step_s": first_s}
    if joules0 is not None and joules1 is not None and joules1 > joules0:  # as train_bench
        r["joules_per_step"] = (joules1 - joules0) / steps
        r["mean_power_w"] = (joules1 - joules0) / (wall1 - wall0)
    return r


def run_case(case, variants, attentions, steps, warmup):
    cfg = config_of(case["model"])
    lengths = case["lengths"]
    torch.manual_seed(0)
    model = Llama(cfg)
    params0 = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator(device="cuda").manual_seed(1)
    total = sum(lengths)
    ids = torch.randint(0, cfg["vocab_size"], (total,), device="cuda", generator=g)
    targets = torch.randint(0, cfg["vocab_size"], (total,), device="cuda", generator=g)
    batch = make_batch(lengths)
    d = cfg["hidden"] // cfg["num_heads"]
    pos = torch.cat([torch.arange(n, device="cuda") for n in lengths]).float()
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, d, 2, device="cuda").float() / d))
    ang = pos[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)[:, None, :]
    cos, sin = emb.cos(), emb.sin()
    expected = math.log(cfg["vocab_size"]) + 0.5 * 0.0004 * cfg["hidden"]  # as train_bench
    out = {}
    for name in variants:
        mode, attn = name.split("_", 1)
        if attn not in attentions:
            out[name] = {"error": "no usable varlen attention"}
            continue
        try:
            fns = compiled_fns() if mode == "compile" else EAGER_FNS
            r = time_variant(model, params0, ids, targets, batch, cos, sin, attentions[attn], fns,
                             steps, warmup)
            assert abs(r["first_loss"] - expected) < 0.3, \
                f"initial loss {r['first_loss']}, expected {expected}"
            base = next((v for v in out.values() if "first_loss" in v), None)
            assert base is None or abs(r["first_loss"] - base["first_loss"]) < 2e-2, \
                f"first loss {r['first_loss']} differs from the other variants' {base['first_loss']}"
            out[name] = r
        except Exception as e:  # noqa: BLE001 (one failed variant must not hide the others)
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            torch.cuda.empty_cache()
        print(f"  {case['model']:6} {case['layout']:8} {name:18} "
              + (f"{out[name]['step_ms']:8.1f} ms  {out[name]['peak_memory_bytes'] / 2**30:5.1f} GiB"
                 f"  (first step {out[name]['first_step_s']:.1f} s)"
                 + (f"  {out[name]['joules_per_step']:.1f} J/step, {out[name]['mean_power_w']:.0f} W"
                    if "joules_per_step" in out[name] else "")
                 if "error" not in out[name] else out[name]["error"]), flush=True)
    del model, params0
    torch.cuda.empty_cache()
    return out


def derived(case, r, peak):
    s = r["step_ms"] / 1e3
    return {"step_ms": r["step_ms"], "tokens_per_s": case["tokens"] / s,
            "model_tflops_per_s": case["flops_per_step"] / s / 1e12,
            "mfu": case["flops_per_step"] / s / peak if peak else 0,
            "peak_memory_bytes": r["peak_memory_bytes"], "first_loss": r["first_loss"],
            "first_step_s": r["first_step_s"],
            **{k: r[k] for k in ("joules_per_step", "mean_power_w") if k in r},
            **({"tokens_per_joule": case["tokens"] / r["joules_per_step"]}
               if r.get("joules_per_step", 0) > 0 else {})}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--torch-from", help="take the PyTorch numbers from this earlier merged JSON "
                    "(same cases) instead of measuring them again; the output records so")
    args = ap.parse_args()
    with open(args.ours) as f:
        ours = json.load(f)
    peak = ours["peak_flops"]
    earlier = None
    if args.torch_from:
        with open(args.torch_from) as f:
            earlier = json.load(f)
        varlen_desc = earlier["torch_varlen_attention"]
        by_case = {(r["model"], r["layout"]): r["torch"] for r in earlier["cases"]}
    else:
        attentions = {"sdpa_loop": attention_sdpa_loop, "cudnn_loop": attention_cudnn_loop}
        try:
            attentions["varlen"], varlen_desc = make_varlen_attention()
        except RuntimeError as e:
            varlen_desc = str(e)
        print(f"torch {torch.__version__}; varlen attention: {varlen_desc}", flush=True)
    variants = [v for v in args.variants.split(",") if v]
    rows = []
    for case in ours["cases"]:
        t0 = time.time()
        if earlier is not None:
            theirs = by_case[(case["model"], case["layout"])]
            assert earlier["cases"][0]["tokens"] == case["tokens"], "earlier run has other cases"
        else:
            theirs = run_case(case, variants, attentions, args.steps, args.warmup)
        row = {k: case[k] for k in ("model", "layout", "tokens", "sequences", "flops_per_step")}
        row["ours"] = {k: case[k] for k in ("step_ms", "tokens_per_s", "model_tflops_per_s", "mfu",
                                            "peak_memory_bytes", "joules_per_step", "mean_power_w",
                                            "tokens_per_joule")
                       if k in case}
        row["torch"] = {n: (derived(case, r, peak) if "error" not in r else r)
                        for n, r in theirs.items()}
        ok = {n: r for n, r in row["torch"].items() if "error" not in r}
        if ok:
            best = min(ok, key=lambda n: ok[n]["step_ms"])
            row["torch_best"] = best
            row["speedup_ours_over_torch_best"] = ok[best]["step_ms"] / case["step_ms"]
            row["speedup_ours_over"] = {n: r["step_ms"] / case["step_ms"] for n, r in ok.items()}
            row["memory_ours_over_torch_best"] = case["peak_memory_bytes"] / ok[best]["peak_memory_bytes"]
            t = ok[best]
            print(f"{case['model']:6} {case['layout']:8} ours {case['step_ms']:8.1f} ms "
                  f"MFU {100 * case['mfu']:5.1f}% | torch best {best} {t['step_ms']:8.1f} ms "
                  f"MFU {100 * t['mfu']:5.1f}% | x{row['speedup_ours_over_torch_best']:.2f}"
                  f"  ({time.time() - t0:.0f} s)", flush=True)
        rows.append(row)
    result = {"git": ours["git"], "device": ours["device"],
              "torch": earlier["torch"] if earlier else torch.__version__,
              "torch_device": earlier["torch_device"] if earlier else torch.cuda.get_device_name(),
              "peak_flops": peak, "torch_varlen_attention": varlen_desc,
              "timing": {"ours": ours["timing"], "torch": "median CUDA-event time of an optimizer step"},
              "mfu_formula": "(6*N_matmul*T + 6*L*H*D*sum n(n+1)) / step_time / peak (docs/training.md)",
              "cases": rows}
    if earlier is not None:
        result["torch_measured"] = (f"in an earlier run (ours at git {earlier['git']} in that run), "
                                    "not re-measured in this one")
        result["earlier_ours"] = {f"{r['model']} {r['layout']}": r["ours"] for r in earlier["cases"]}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
