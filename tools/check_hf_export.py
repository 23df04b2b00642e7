#!/usr/bin/env python3
"""Checks a `hydraulis export` directory against the logits our C++ model computed.

Inputs:
  --model DIR      the export (model.safetensors, config.json, optionally the tokenizer files)
  --logits F       our side, written by `hydraulis export --check-logits F` or by
                   HYD_HF_EXPORT_KEEP=DIR build/tests/hf_export_test: input_ids (T) i32,
                   cu_seqlens (B + 1) i32 (sequence b is rows cu[b]..cu[b+1]), logits (T, V) f32,
                   computed from the exported (already rounded) weights.
For every sequence the script runs
  * transformers' LlamaForCausalLM.from_pretrained(DIR) in float32, when transformers imports;
  * always, an independent LLaMA written below from HF's semantics (rotate_half RoPE, repeat_kv
    grouped-query attention, SwiGLU MLP, RMSNorm, tied or untied head), in float64;
and compares each with our logits: max |theirs - ours| / max |ours| must stay below --tolerance
(default 1e-3; both sides use the same weights, so only float arithmetic differs), and the
arg-max token must agree. Prints one JSON line per implementation; exits 1 on a mismatch.
Needs torch (and optionally transformers). Usage (docs/model.md, "Export to Hugging Face"):
  python3 tools/check_hf_export.py --model DIR --logits F [--device cpu|cuda] [--tolerance X]
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16,
             "F16": torch.float16, "I32": torch.int32, "I64": torch.int64}


def load_safetensors(path):
    """name -> tensor (CPU), read with nothing but struct and json."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    header.pop("__metadata__", None)
    start = 8 + header_len
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        raw = bytearray(blob[start + lo:start + hi])
        flat = torch.frombuffer(raw, dtype=ST_DTYPES[info["dtype"]]) if raw else \
            torch.empty(0, dtype=ST_DTYPES[info["dtype"]])
        out[name] = flat.reshape(info["shape"]).clone()
    return out


class ReferenceLlama:
    """HF LlamaForCausalLM's forward from its config.json and state dict, in float64."""

    def __init__(self, cfg, weights, device):
        self.cfg = cfg
        self.w = {k: v.to(device=device, dtype=torch.float64) for k, v in weights.items()}
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads", self.heads)
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.heads
        self.eps = cfg["rms_norm_eps"]
        theta = cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta", 10000.0))
        steps = torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=device)
        self.inv_freq = 1.0 / (theta ** (steps / self.head_dim))
        self.device = device

    def norm(self, x, name):
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * scale * self.w[name]

    @staticmethod
    def rotate_half(x):
        first, second = x.chunk(2, dim=-1)
        return torch.cat((-second, first), dim=-1)

    def rope(self, x):
        # x (heads, n, D); angle of position p and pair i: p * inv_freq[i], the same for i and i + D/2.
        n = x.shape[1]
        pos = torch.arange(n, dtype=torch.float64, device=self.device)
        freqs = torch.outer(pos, self.inv_freq)
        angle = torch.cat((freqs, freqs), dim=-1)
        return x * angle.cos() + self.rotate_half(x) * angle.sin()

    def __call__(self, ids):
        w, d = self.w, self.head_dim
        n = ids.shape[0]
        x = w["model.embed_tokens.weight"][ids]
        causal = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()
        for layer in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            h = self.norm(x, p + "input_layernorm.weight")
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(n, self.heads, d).transpose(0, 1)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(n, self.kv_heads, d).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(n, self.kv_heads, d).transpose(0, 1)
            q, k = self.rope(q), self.rope(k)
            group = self.heads // self.kv_heads  # repeat_kv: query head j uses kv head j // group
            k = k.repeat_interleave(group, dim=0)
            v = v.repeat_interleave(group, dim=0)
            scores = (q @ k.transpose(1, 2)) / math.sqrt(d)
            scores = scores.masked_fill(~causal, float("-inf"))
            attn = (scores.softmax(-1) @ v).transpose(0, 1).reshape(n, self.heads * d)
            x = x + attn @ w[p + "self_attn.o_proj.weight"].T
            h = self.norm(x, p + "post_attention_layernorm.weight")
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
        x = self.norm(x, "model.norm.weight")
        tied = self.cfg.get("tie_word_embeddings", False)
        head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
        return x @ head.T


def transformers_model(model_dir, device):
    try:
        import transformers
    except ImportError:
        return None, "transformers is not installed"
    try:
        model = transformers.LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    except TypeError:  # transformers older than 4.36
        model = transformers.LlamaForCausalLM.from_pretrained(model_dir)
    # Whatever dtype it loaded in (bf16 weights upcast exactly), compute in float32.
    model.to(device=device, dtype=torch.float32).eval()

    def run(ids):
        with torch.no_grad():
            return model(ids[None].to(device)).logits[0].to(torch.float64)

    return run, f"transformers {transformers.__version__}"


def check_tokenizer(model_dir):
    """The exported GPT-2 tokenizer through transformers, when both are there."""
    if not os.path.exists(os.path.join(model_dir, "vocab.json")):
        return True, "no tokenizer files"
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    ids = tok("Hello world")["input_ids"]
    ok = ids == [15496, 995] and tok.eos_token_id == 50256
    return ok, (f"{type(tok).__name__}: 'Hello world' -> {ids} (GPT-2: [15496, 995]), eos "
                f"{tok.eos_token_id} (50256){'' if ok else ' MISMATCH'}")


def compare(name, run, ours, ids, cu, device, tolerance):
    scale = ours.abs().max().item()
    worst, same, total = 0.0, 0, 0
    for b in range(len(cu) - 1):
        lo, hi = cu[b], cu[b + 1]
        theirs = run(ids[lo:hi].to(device).long()).cpu()
        mine = ours[lo:hi]
        worst = max(worst, (theirs - mine).abs().max().item())
        same += (theirs.argmax(-1) == mine.argmax(-1)).sum().item()
        total += hi - lo
    rel = worst / scale
    ok = rel < tolerance and same == total
    print(json.dumps({"implementation": name, "positions": total, "max_abs_diff": worst,
                      "rel_to_max_logit": rel, "argmax_agree": f"{same}/{total}", "ok": ok}))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="exported directory")
    ap.add_argument("--logits", required=True, help="our logits (safetensors)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    check = load_safetensors(args.logits)
    ids, cu = check["input_ids"], check["cu_seqlens"].tolist()
    ours = check["logits"].to(torch.float64)
    if ours.shape[1] != cfg["vocab_size"]:
        raise SystemExit(f"{args.logits}: logits have {ours.shape[1]} columns, config.json "
                         f"vocab_size is {cfg['vocab_size']}")
    print(f"# {args.model}: {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
          f"vocab {cfg['vocab_size']}, {cfg.get('torch_dtype')}; {len(cu) - 1} sequences, "
          f"{ids.numel()} positions; device {args.device}; torch {torch.__version__}")
    ok = True
    run, what = transformers_model(args.model, args.device)
    if run is not None:
        ok &= compare(what, run, ours, ids, cu, args.device, args.tolerance)
        tokenizer_ok, message = check_tokenizer(args.model)
        ok &= tokenizer_ok
        print(f"# tokenizer: {message}")
    else:
        print(f"# {what}: only the independent implementation runs")
    weights = load_safetensors(os.path.join(args.model, "model.safetensors"))
    reference = ReferenceLlama(cfg, weights, args.device)
    ok &= compare("independent torch float64", reference, ours, ids, cu, args.device,
                  args.tolerance)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
