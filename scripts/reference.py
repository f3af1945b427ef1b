#!/usr/bin/env python3
"""Write tests/reference/reference.json: the article's network in float64 by
PyTorch, the independent reference that `tests/it/fixtures.rs` checks
actlab's f32 forward pass, backward pass and first Adam step against.

The conventions are those of ../shared/fixtures/README.md (batch of 4,
NCHW, OIHW and [out, in] weights, flatten in C, H, W order, mean softmax
cross-entropy, dropout off), so the same test also reads a full fixture
directory through ACTLAB_FIXTURES. The difference: nothing here is stored
that a formula gives. The input, the labels and every parameter come from
splitmix64 of (tensor, element), which the Rust test computes too, and the
file keeps only what the reference computed: the loss, the logits, and for
every layer output and gradient a sample of elements (evenly spaced, plus
the largest in magnitude) with the whole tensor's largest magnitude and L2
norm. So it stays small (about 0.2 MB) and still catches a wrong element
anywhere through the norm.

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch numpy
    /tmp/ref/bin/python scripts/reference.py          # rewrites the file
    /tmp/ref/bin/python scripts/reference.py --seed 7 --out /tmp/ref7.json
    ACTLAB_FIXTURES=/tmp/ref7.json make test          # another reference set

The formula (both sides):
    h(s, i)  = splitmix64((seed << 40) | (s << 32) | i), s = tensor number,
               i = flat index in this file's layout; s = 0 the input, 1.. the
               parameters in order (conv1.weight, ..., dense2.bias), 255 the
               labels; seed 0 for the committed file
    u(s, i)  = (h >> 11) / 2^53, in [0, 1)
    input    = (h >> 40) / 2^24                    (exact in f32)
    weight   = f32((2u - 1) * sqrt(6 / (fan_in + fan_out)))   (Glorot uniform)
    bias, β, moving mean = f32((2u - 1) * 0.05)
    γ, moving variance   = f32(1 + (2u - 1) * 0.05)
    label i  = h(255, i) mod 10
"""
import argparse
import json
import math
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
M64 = (1 << 64) - 1
BATCH = 4
SAMPLES_SPACED = 24
SAMPLES_LARGEST = 8
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "reference" / "reference.json"

# name, cin, cout, padding of each convolution.
CONVS = [("conv1", 3, 32, 1), ("conv2", 32, 32, 0), ("conv3", 32, 64, 1), ("conv4", 64, 64, 0)]
# Batch normalisation (the `article-bn` network): Keras 3's BatchNormalization
# in training, after each convolution and dense1, before the activation.
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3


def params_of(network):
    """(name, shape (OIHW / [out, in]), init) in the flat vector's order, the
    order giving the stream number; init is ("glorot", fan_in, fan_out),
    ("zeros",) or ("ones",) as in actlab's table (`nn/arch.rs`)."""
    bn = network == "article-bn"
    out = []

    def norm(k, c):
        out.extend([(f"bn{k}.gamma", (c,), ("ones",)), (f"bn{k}.beta", (c,), ("zeros",)),
                    (f"bn{k}.moving_mean", (c,), ("zeros",)), (f"bn{k}.moving_variance", (c,), ("ones",))])

    for k, (name, cin, cout, _) in enumerate(CONVS, start=1):
        out.append((f"{name}.weight", (cout, cin, 3, 3), ("glorot", 9 * cin, 9 * cout)))
        if bn:
            norm(k, cout)
        else:
            out.append((f"{name}.bias", (cout,), ("zeros",)))
    out.append(("dense1.weight", (512, 2304), ("glorot", 2304, 512)))
    if bn:
        norm(5, 512)
    else:
        out.append(("dense1.bias", (512,), ("zeros",)))
    out += [("dense2.weight", (10, 512), ("glorot", 512, 10)), ("dense2.bias", (10,), ("zeros",))]
    return out


PARAMS = params_of("article")


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & M64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & M64
    return z ^ (z >> np.uint64(31))


SEED = 0


def hashes(stream, n):
    with np.errstate(over="ignore"):
        key = (np.uint64(SEED) << np.uint64(40)) | (np.uint64(stream) << np.uint64(32))
        return splitmix64(key | np.arange(n, dtype=np.uint64))


def unit(h):
    return (h >> np.uint64(11)).astype(np.float64) / 2.0**53


def inputs():
    x = (hashes(0, BATCH * 3 * 32 * 32) >> np.uint64(40)).astype(np.float64) / 2.0**24
    params = {}
    for s, (name, shape, init) in enumerate(PARAMS, start=1):
        u = unit(hashes(s, math.prod(shape)))
        scale = math.sqrt(6.0 / (init[1] + init[2])) if init[0] == "glorot" else 0.05
        v = (2.0 * u - 1.0) * scale + (1.0 if init[0] == "ones" else 0.0)
        params[name] = v.astype(np.float32).reshape(shape)
    labels = (hashes(255, BATCH) % np.uint64(10)).astype(np.int64)
    return x.astype(np.float32).reshape(BATCH, 3, 32, 32), params, labels


def activation(name):
    ln2 = math.log(2.0)
    return {
        "relu": torch.relu,
        "tanh": torch.tanh,
        "signed_sqrt": lambda x: torch.sign(x) * torch.sqrt(torch.abs(x)),
        "softplus_linear": lambda x: torch.where(x <= 0, 2 * F.softplus(torch.clamp(x, max=0)), x + 2 * ln2),
        "reflection_linear": lambda x: torch.where(x <= 0, -x, x),
        # The minimum over each sample's group (H and W after a conv, the units after dense1), with gradient through it.
        "zero_fit_linear": lambda x: x - (torch.amin(x, dim=(2, 3), keepdim=True) if x.dim() == 4 else torch.amin(x, dim=1, keepdim=True)),
    }[name]


def batch_norm(h, p, k, moving):
    """Training mode: the batch's mean and biased variance over every axis
    but the channels'; the moving statistics after the pass go to `moving`."""
    dims, shape = ((0, 2, 3), (1, -1, 1, 1)) if h.dim() == 4 else ((0,), (1, -1))
    mean = h.mean(dim=dims, keepdim=True)
    var = ((h - mean) ** 2).mean(dim=dims, keepdim=True)
    for stat, batch in (("moving_mean", mean), ("moving_variance", var)):
        old = p[f"bn{k}.{stat}"].detach()
        moving[f"bn{k}.{stat}"] = BN_MOMENTUM * old + (1 - BN_MOMENTUM) * batch.detach().reshape(-1)
    return p[f"bn{k}.gamma"].view(shape) * (h - mean) / torch.sqrt(var + BN_EPSILON) + p[f"bn{k}.beta"].view(shape)


def forward(act, x, p, network):
    """The logits, each layer's output by name, and (article-bn) the moving statistics after the pass."""
    f = activation(act)
    bn = network == "article-bn"
    layers, moving = {}, {}

    def bias(name):
        return None if bn else p[f"{name}.bias"]

    def norm(k, h):
        return batch_norm(h, p, k, moving) if bn else h

    h = x
    for i, (name, _, _, pad) in enumerate(CONVS):
        h = f(norm(i + 1, F.conv2d(h, p[f"{name}.weight"], bias(name), padding=pad)))
        layers[name] = h
        if i % 2 == 1:
            h = F.max_pool2d(h, 2)
            layers[f"pool{i // 2 + 1}"] = h
    h = f(norm(5, F.linear(h.flatten(1), p["dense1.weight"], bias("dense1"))))
    layers["dense1"] = h
    logits = F.linear(h, p["dense2.weight"], p["dense2.bias"])
    return logits, layers, moving


def sample(t):
    """Evenly spaced elements and the largest in magnitude, with the whole
    tensor's largest magnitude and L2 norm (flat indices in this layout)."""
    v = t.detach().reshape(-1).numpy()
    n = v.size
    at = {int((k + 0.5) * n / SAMPLES_SPACED) for k in range(SAMPLES_SPACED)}
    at |= {int(i) for i in np.argsort(-np.abs(v), kind="stable")[:SAMPLES_LARGEST]}
    at = sorted(at)
    return {"shape": list(t.shape), "max_abs": float(np.abs(v).max()), "norm": float(np.sqrt(np.sum(v * v))),
            "at": at, "values": [float(v[i]) for i in at]}


def main():
    global SEED
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="the formula's seed (0: the committed reference)")
    ap.add_argument("--network", choices=["article", "article-bn"], default="article",
                    help="the article's network, or it with batch normalisation (default file: reference-article-bn.json)")
    ap.add_argument("--out", type=pathlib.Path, help=f"where to write (default {OUT})")
    args = ap.parse_args()
    SEED = args.seed
    global PARAMS
    PARAMS = params_of(args.network)
    if args.out is None:
        args.out = OUT if args.network == "article" else OUT.with_name(f"reference-{args.network}.json")
    x32, p32, labels = inputs()
    x = torch.from_numpy(x32.astype(np.float64))
    out = {
        "about": "scripts/reference.py: the article's CNN in float64 (PyTorch " + torch.__version__ +
                 "); inputs and parameters from the formula in that script; conventions of ../shared/fixtures/README.md",
        "seed": SEED,
        "network": args.network,
        "batch": BATCH,
        "labels": labels.tolist(),
        # What the formula gave, so that a Rust side that computes it differently fails at once and says so.
        "formula_check": {"input": sample(torch.from_numpy(x32.astype(np.float64)))}
                         | {f"param.{k}": sample(torch.from_numpy(v.astype(np.float64))) for k, v in p32.items()},
        "activations": {},
    }
    functions = ["relu", "tanh", "signed_sqrt", "softplus_linear", "reflection_linear", "zero_fit_linear"]
    for act in functions if args.network == "article" else ["relu", "softplus_linear", "zero_fit_linear"]:
        p = {k: torch.from_numpy(v.astype(np.float64)).requires_grad_("moving" not in k) for k, v in p32.items()}
        logits, layers, moving = forward(act, x, p, args.network)
        loss = F.cross_entropy(logits, torch.from_numpy(labels))
        loss.backward()
        out["activations"][act] = {
            "loss": float(loss.detach()),
            "logits": [float(v) for v in logits.detach().reshape(-1)],
            "layers": {k: sample(v) for k, v in layers.items()},
            # The moving statistics are not trained: their gradient is 0.
            "grads": {k: sample(v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in p.items()},
        }
        if moving:
            out["activations"][act]["moving"] = {k: sample(v) for k, v in moving.items()}
        if act == "relu" and args.network == "article":
            # One Keras Adam step from zero moments (step 1, lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-7).
            lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
            alpha = lr * math.sqrt(1 - b2) / (1 - b1)
            out["adam1_delta"] = {k: sample(-alpha * ((1 - b1) * v.grad) / (torch.sqrt((1 - b2) * v.grad**2) + eps))
                                  for k, v in p.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(f"{args.out}: {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
