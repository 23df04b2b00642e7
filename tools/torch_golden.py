#!/usr/bin/env python3
"""PyTorch fp64 reference of Hydraulis' LLaMA for the model golden test.

Reads tests/model/golden/llama_micro_input.safetensors (our C++ init weights, a packed batch and
the settings in its metadata, written by tests/model/golden_test.cpp) and writes
llama_micro_golden.safetensors with
  loss                 the mean token loss of the batch (sum over tokens / number of targets)
  grad.<name>          d loss / d parameter for every parameter
  curve.loss           the loss before each of `curve_steps` AdamW steps (torch.optim.AdamW,
  curve.grad_norm      warm-up + cosine LR, clip_grad_norm_, no decay on 1-D weights)
The model is written from the LLaMA definition in plain PyTorch (HF conventions: rotate-half
RoPE, repeat_kv grouping), attention run per sequence so nothing crosses a sequence boundary.
Everything is computed in fp64; the outputs are stored in the dtype of the input's weights (F64
for llama_micro_*, F32 for llama_d64_*, the head-dim-64 files the CUDA test uses).
Only torch and the standard library are needed. Usage:
  python3 tools/torch_golden.py [--input IN] [--output OUT]
"""
import argparse
import json
import math
import struct

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "I32": torch.int32, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    meta = header.pop("__metadata__", {})
    base = 8 + size
    tensors = {}
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = entry["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + begin : base + end]), dtype=DTYPES[entry["dtype"]])
        tensors[name] = t.reshape(entry["shape"]).clone()
    return tensors, meta


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, positions, theta):
    # x (n, heads, D); HF LlamaRotaryEmbedding: inv_freq = 1 / theta^(2i/D), emb = [f, f].
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    angles = positions[:, None].to(torch.float64) * inv_freq[None, :]
    emb = torch.cat((angles, angles), dim=-1)[:, None, :]
    return x * emb.cos() + rotate_half(x) * emb.sin()


def attention(q, k, v):
    # q (n, H, D), k/v (n, Hkv, D): causal softmax attention of one sequence, repeat_kv grouping.
    n, heads, d = q.shape
    groups = heads // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(d)
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("hts,shd->thd", scores.softmax(-1), v)


def loss_fn(p, cfg, ids, targets, cu):
    c, heads, kv_heads = cfg["hidden"], cfg["num_heads"], cfg["num_kv_heads"]
    d = c // heads
    theta, eps = cfg["rope_theta"], cfg["norm_eps"]
    x = p["model.embed_tokens.weight"][ids.long()]
    positions = torch.cat([torch.arange(cu[b + 1] - cu[b]) for b in range(len(cu) - 1)])
    for layer in range(cfg["num_layers"]):
        pre = f"model.layers.{layer}."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(-1, heads, d)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(-1, kv_heads, d)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(-1, kv_heads, d)
        q, k = rope(q, positions, theta), rope(k, positions, theta)
        out = torch.cat([attention(q[cu[b]:cu[b + 1]], k[cu[b]:cu[b + 1]], v[cu[b]:cu[b + 1]])
                         for b in range(len(cu) - 1)])
        x = x + out.reshape(-1, heads * d) @ p[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        gate, up = (h @ p[pre + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        x = x + (torch.nn.functional.silu(gate) * up) @ p[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tied"] else p["lm_head.weight"]
    logits = x @ head.T
    return torch.nn.functional.cross_entropy(logits, targets.long(), reduction="sum") / len(targets)


def lr_at(step, cfg):
    peak, low, warm, total = cfg["peak_lr"], cfg["min_lr"], cfg["warmup_steps"], cfg["total_steps"]
    if step <= warm:
        return peak * step / warm
    if step > total:
        return low
    return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default="tests/model/golden/llama_micro_input.safetensors")
    ap.add_argument("--output", default="tests/model/golden/llama_micro_golden.safetensors")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    tensors, meta = read_safetensors(args.input)
    cfg = json.loads(meta["config"])
    ids, targets = tensors.pop("batch.input_ids"), tensors.pop("batch.targets")
    cu = tensors.pop("batch.cu_seqlens").tolist()
    out_dtype = next(iter(tensors.values())).dtype
    params = {n: t.to(torch.float64).requires_grad_(True) for n, t in tensors.items()}

    out = {}
    loss = loss_fn(params, cfg, ids, targets, cu)
    loss.backward()
    out["loss"] = loss.detach().reshape(1)
    for name, t in params.items():
        out["grad." + name] = t.grad.detach().clone()

    # Curve: from the same init, curve_steps AdamW steps on the same batch.
    for t in params.values():
        t.grad = None
    decay = [t for t in params.values() if t.dim() >= 2]
    no_decay = [t for t in params.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg["peak_lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    losses, norms = [], []
    for step in range(1, cfg["curve_steps"] + 1):
        opt.zero_grad()
        loss = loss_fn(params, cfg, ids, targets, cu)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), cfg["max_grad_norm"])
        losses.append(loss.item())
        norms.append(norm.item())
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        opt.step()
    out["curve.loss"] = torch.tensor(losses)
    out["curve.grad_norm"] = torch.tensor(norms)
    write_safetensors(args.output, {k: v.to(out_dtype) for k, v in out.items()})
    print(f"loss {out['loss'].item():.12f}; curve {', '.join(f'{x:.6f}' for x in losses)}")


if __name__ == "__main__":
    main()
