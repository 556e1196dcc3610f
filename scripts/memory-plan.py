#!/usr/bin/env python3
"""Per-GPU memory of distilling a VLoRA student with the PyTorch engine under
FSDP (full sharding), from the formula in docs/gpu-memory-plan.md. Prints the
tables of that document.

    python3 scripts/memory-plan.py
"""

GB = 1e9
HBM = 141  # GB per GPU (H200)

# Llama-2 shapes: layers, hidden, intermediate, heads, kv heads, vocab.
MODELS = {
    "7B": dict(L=32, d=4096, f=11008, h=32, kv=32, V=32000),
    "70B": dict(L=80, d=8192, f=28672, h=64, kv=8, V=32000),
}
TOKENS = 4 * 4096  # tokens per GPU per micro-batch: 4 sequences of 4,096
GPUS = (1, 8, 64)


def layer_mats(m):
    d, f, dkv = m["d"], m["f"], m["d"] // m["h"] * m["kv"]
    # (rows, cols) of q, k, v, o, gate, up, down
    return [(d, d), (dkv, d), (dkv, d), (d, d), (f, d), (f, d), (d, f)]


def dense_params(m):
    per_layer = sum(r * c for r, c in layer_mats(m)) + 2 * m["d"]
    return m["L"] * per_layer + 2 * m["V"] * m["d"] + m["d"]


def vlora_params(m, K=4, r=64):
    """Stored parameters at compound size K, rank r, base mean: per compound
    one dense base per matrix and K rank-r increments; norms (1-D) as a base
    and K dense deltas; embeddings and head dense."""
    comps = m["L"] // K
    base = sum(rr * c for rr, c in layer_mats(m)) + 2 * m["d"]
    inc = sum(r * (rr + c) for rr, c in layer_mats(m)) + 2 * m["d"]
    return comps * (base + K * inc) + 2 * m["V"] * m["d"] + m["d"]


def act_bytes_per_token_layer(m):
    """bf16 values a Llama block keeps for its backward pass, per token:
    the two norm inputs and outputs (4d), q, k, v (d + 2 d_kv), the attention
    output and o-proj input (2d), gate, up, silu(gate) and their product
    (4f); flash attention keeps no T×T matrix."""
    d, f, dkv = m["d"], m["f"], m["d"] // m["h"] * m["kv"]
    return 2 * (4 * d + d + 2 * dkv + 2 * d + 4 * f)


def plan(m, ps, G, ckpt):
    pt = dense_params(m)
    L, d, V = m["L"], m["d"], m["V"]
    largest_layer = max(sum(r * c for r, c in layer_mats(m)), V * d)
    state = 16 * ps / G                  # fp32 master, fp32 grad, Adam m and v
    teacher = 2 * pt / G                 # bf16 teacher, sharded
    gathered = 2 * 2 * 2 * largest_layer  # bf16 unit gathered, prefetch of the next, teacher and student
    if ckpt:
        acts = TOKENS * (L * 2 * d + act_bytes_per_token_layer(m))
    else:
        acts = TOKENS * L * act_bytes_per_token_layer(m)
    hidden = TOKENS * L * d * 2          # the teacher's hidden states for the hidden-state term
    logits = TOKENS * V * 4 * 3          # teacher log-probs, student logits and their gradient, fp32
    return dict(state=state, teacher=teacher, gathered=gathered, acts=acts, hidden=hidden, logits=logits)


def main():
    print(f"tokens per GPU per micro-batch: {TOKENS:,}; GPU memory {HBM} GB\n")
    for name, m in MODELS.items():
        pt = dense_params(m)
        students = [("K=4 r=64 mean", vlora_params(m)), ("0.55 budget", int(0.55 * pt))]
        print(f"### {name}: original {pt / 1e9:.2f} B parameters; " +
              "; ".join(f"student {s} {p / 1e9:.2f} B stored" for s, p in students) + "\n")
        print("| student | GPUs | optimizer state 16·P_s/G | teacher 2·P_t/G | gathered units | activations (no ckpt / ckpt) | teacher hidden states | logits | total no ckpt | total ckpt | fits 141 GB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for sname, ps in students:
            for G in GPUS:
                a = plan(m, ps, G, False)
                b = plan(m, ps, G, True)
                tot_a = sum(a.values()) / GB
                tot_b = sum(b.values()) / GB
                fits = "yes" if tot_a <= HBM else ("with ckpt" if tot_b <= HBM else "no")
                print(f"| {sname} | {G} | {a['state'] / GB:.1f} | {a['teacher'] / GB:.1f} | {a['gathered'] / GB:.2f} | "
                      f"{a['acts'] / GB:.1f} / {b['acts'] / GB:.1f} | {a['hidden'] / GB:.1f} | {a['logits'] / GB:.1f} | "
                      f"{tot_a:.1f} | {tot_b:.1f} | {fits} |")
        print()


if __name__ == "__main__":
    main()
