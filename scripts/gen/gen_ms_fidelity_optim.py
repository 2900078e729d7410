#!/usr/bin/env python3
"""gen_ms_fidelity_optim.py — MindSpore 2.10's own numbers for spore's optimizer fidelity specs
(issue #10): AdamWeightDecay steps, Adam with use_amsgrad, dynamic weight decay, parameter
groups (lr / weight_decay / grad_centralization / order_params) and the names and values of
the optimizer state MindSpore writes into a checkpoint, plus a read-back of safetensors files
written by spore.

Run by hand from the repository root (never from `make test`):

    /work/venv/bin/python scripts/gen/gen_ms_fidelity_optim.py           # writes spec/fixtures/ms_optim_fidelity.json
    /work/venv/bin/python scripts/gen/gen_ms_fidelity_optim.py --safetensors
        # needs `make` (build/libspore.so) and luajit: spore writes safetensors files
        # (scripts/gen/spore_safetensors_sample.lua, and scripts/convert.lua on
        # spec/fixtures/ms_momentum.ckpt) into spec/fixtures/spore_written/, MindSpore reads them
        # back; the result goes to spec/fixtures/ms_safetensors_readback.json
    /work/venv/bin/python scripts/gen/gen_ms_fidelity_optim.py --readback FILE.safetensors [...]
        # loads spore-written safetensors with mindspore.load_checkpoint(format="safetensors")
        # and prints one JSON line per file: names, dtypes, shapes, values (or the error)

Versions of the committed fixture: mindspore 2.10.0 (CPU), numpy (see the JSON's "versions").
Every input is a fixed numpy array (no MindSpore initialiser, no RNG): a rerun with the same
versions writes the same file.
"""
import argparse
import json
import os
import sys
import tempfile
import warnings

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("GLOG_v", "3")

import mindspore as ms  # noqa: E402
from mindspore import nn, Tensor, Parameter  # noqa: E402
import mindspore.ops as ops  # noqa: E402

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


def f32(a):
    return np.asarray(a, dtype=np.float32)


# Fixed inputs: three parameters (one named with "gamma", which the ungrouped decay filter
# skips) and three steps of gradients.
W0 = f32(np.arange(12).reshape(3, 4) * 0.1 - 0.55)
B0 = f32([0.3, -0.2, 0.1])
G0 = f32([1.0, 0.9, 1.1])
C0 = f32((np.arange(32).reshape(2, 16) % 7) * 0.05 - 0.1)  # shape[1] % 16 == 0: centralised


def grads(step):
    s = step + 1
    gw = f32(np.sin(np.arange(12).reshape(3, 4) * 0.7 + s) * 0.5)
    gb = f32(np.cos(np.arange(3) * 1.3 + s) * 0.3)
    gg = f32([0.05 * s, -0.02, 0.01 * s])
    gc = f32(np.cos(np.arange(32).reshape(2, 16) * 0.37 + s) * 0.4 + 0.1 * s)
    return gw, gb, gg, gc


def make_params(with_c=False):
    ps = [Parameter(Tensor(W0.copy()), name="fc.weight"), Parameter(Tensor(B0.copy()), name="fc.bias"),
          Parameter(Tensor(G0.copy()), name="bn.gamma")]
    if with_c:
        ps.append(Parameter(Tensor(C0.copy()), name="conv.weight"))
    return ps


def lst(t):
    a = t.asnumpy() if hasattr(t, "asnumpy") else np.asarray(t)
    return {"shape": list(a.shape), "dtype": str(a.dtype), "values": [float(x) for x in a.reshape(-1)]}


def run(opt_fn, steps=3, with_c=False):
    ps = make_params(with_c)
    opt = opt_fn(ps)
    out = {"steps": []}
    for s in range(steps):
        g = dict(zip(["fc.weight", "fc.bias", "bn.gamma", "conv.weight"], grads(s)))
        # gradients in the optimizer's parameter order (group order, or order_params)
        opt(tuple(Tensor(g[p.name]) for p in opt._parameters))
        out["steps"].append({p.name: lst(p) for p in ps})
    state = []
    for p in opt.parameters_and_names():
        name, par = p
        state.append({"name": name, **lst(par)})
    out["state"] = state
    out["param_order"] = [p.name for p in opt._parameters]
    # what save_checkpoint(opt) writes, in file order
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "o.ckpt")
        ms.save_checkpoint(opt, path)
        loaded = ms.load_checkpoint(path)
        out["ckpt"] = [{"name": k, **lst(v)} for k, v in loaded.items()]
    return out


class StepDecay(nn.Cell):
    """weight decay as a function of global_step: 0.01 * (1 + step)"""

    def construct(self, global_step):
        return 0.01 * (1.0 + ops.cast(global_step, ms.float32).reshape(()))


CASES = {}


def case(name):
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


@case("adamw")
def _():
    return run(lambda ps: nn.AdamWeightDecay(ps, learning_rate=0.01, beta1=0.9, beta2=0.999, eps=1e-6,
                                             weight_decay=0.1))


@case("adamw_defaults")
def _():
    return run(lambda ps: nn.AdamWeightDecay(ps))


@case("adamw_groups")
def _():
    return run(lambda ps: nn.AdamWeightDecay([{"params": [ps[0]], "weight_decay": 0.05, "lr": 0.02},
                                              {"params": ps[1:]}], learning_rate=0.01, weight_decay=0.0))


@case("adam_amsgrad")
def _():
    return run(lambda ps: nn.Adam(ps, learning_rate=0.01, weight_decay=0.01, use_amsgrad=True))


@case("momentum_dynamic_wd")
def _():
    return run(lambda ps: nn.Momentum(ps, learning_rate=0.1, momentum=0.9, weight_decay=StepDecay()))


@case("adamw_dynamic_wd")
def _():
    return run(lambda ps: nn.AdamWeightDecay(ps, learning_rate=0.01, weight_decay=StepDecay()))


@case("momentum_groups_lr")
def _():
    # one group with its own lr, one with the default: learning_rate_group_0 + learning_rate
    return run(lambda ps: nn.Momentum([{"params": [ps[0]], "lr": 0.05, "weight_decay": 0.01},
                                       {"params": ps[1:]}], learning_rate=0.1, momentum=0.9))


@case("momentum_groups_all_lr")
def _():
    return run(lambda ps: nn.Momentum([{"params": [ps[0], ps[2]], "lr": 0.05},
                                       {"params": [ps[1]], "lr": 0.02}], learning_rate=0.1, momentum=0.9))


@case("momentum_groups_lr_array")
def _():
    return run(lambda ps: nn.Momentum([{"params": [ps[0]], "lr": [0.05, 0.04, 0.03, 0.02]},
                                       {"params": ps[1:]}], learning_rate=[0.1, 0.09, 0.08, 0.07], momentum=0.9))


@case("momentum_order_params")
def _():
    return run(lambda ps: nn.Momentum([{"params": [ps[1]], "lr": 0.05},
                                       {"params": [ps[0], ps[2]], "weight_decay": 0.02},
                                       {"order_params": ps}], learning_rate=0.1, momentum=0.9))


@case("momentum_grad_centralization")
def _():
    """MindSpore 2.10's CPU build has no Centralization kernel ("Unsupported op [Centralization] on
    CPU"), so the steps are numpy float32 following nn/optim/optimizer.py: decay, then
    _tensor_apply_grad_centralization (rank > 1 and shape[1] % 16 == 0: g - mean over axes 1..),
    then ApplyMomentum (v = v*u + g; p -= lr*v). The state names and order are MindSpore's own
    (the optimizer saved before any step)."""
    ps = make_params(True)
    opt = nn.Momentum([{"params": [ps[0], ps[3]], "grad_centralization": True, "weight_decay": 0.01},
                       {"params": [ps[1], ps[2]]}], learning_rate=0.1, momentum=0.9)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "o.ckpt")
        ms.save_checkpoint(opt, path)
        names = list(ms.load_checkpoint(path).keys())
    order = [p.name for p in opt._parameters]
    val = {"fc.weight": W0.copy(), "fc.bias": B0.copy(), "bn.gamma": G0.copy(), "conv.weight": C0.copy()}
    mom = {k: np.zeros_like(v) for k, v in val.items()}
    gc = {"fc.weight": True, "conv.weight": True, "fc.bias": False, "bn.gamma": False}
    wd = {"fc.weight": np.float32(0.01), "conv.weight": np.float32(0.01)}
    lr, u = np.float32(0.1), np.float32(0.9)
    steps = []
    for s in range(3):
        g = dict(zip(["fc.weight", "fc.bias", "bn.gamma", "conv.weight"], grads(s)))
        for k in order:
            gk = g[k]
            if k in wd:
                gk = (val[k] * wd[k] + gk).astype(np.float32)
            if gc[k] and gk.ndim > 1 and gk.shape[1] % 16 == 0:
                axes = tuple(range(1, gk.ndim))
                gk = (gk - gk.mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)).astype(np.float32)
            mom[k] = (mom[k] * u + gk).astype(np.float32)
            val[k] = (val[k] - lr * mom[k]).astype(np.float32)
        steps.append({k: lst(val[k]) for k in order})
    state = {"global_step": np.array([3], np.int32), "learning_rate": np.float32(0.1), "momentum": np.float32(0.9)}
    ck = []
    for n in names:
        if n in state:
            ck.append({"name": n, **lst(state[n])})
        elif n.startswith("moments."):
            ck.append({"name": n, **lst(mom[n[len("moments."):]])})
        else:
            ck.append({"name": n, **lst(val[n])})
    return {"oracle": "numpy float32 after MindSpore's formula (no CPU Centralization kernel in MindSpore 2.10)",
            "steps": steps, "param_order": order, "ckpt": ck}


@case("adam_groups_lr")
def _():
    return run(lambda ps: nn.Adam([{"params": [ps[0]], "lr": 0.02},
                                   {"params": ps[1:], "weight_decay": 0.01}], learning_rate=0.01))


def cells_case():
    """Names MindSpore gives after a head swap by assignment (the tutorials' `net.fc = nn.Dense(...)`)."""
    class Block(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, has_bias=True)
            self.bn = nn.BatchNorm2d(4)

        def construct(self, x):
            return self.bn(self.conv(x))

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.body = Block()
            self.relu = nn.ReLU()
            self.fc = nn.Dense(4, 2)
            self.out = nn.Dense(2, 2)

        def construct(self, x):
            return self.out(self.fc(self.relu(self.body(x))))

    net = Net()
    net.fc = nn.Dense(4, 7)           # replace in place
    net.extra = nn.Dense(7, 3)        # a new child: appended
    opt = nn.Momentum(net.trainable_params(), 0.1, 0.9)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "n.ckpt")
        ms.save_checkpoint(net, path)
        saved = list(ms.load_checkpoint(path).keys())
    return {
        "cells_and_names": [n for n, _ in net.cells_and_names()],
        "parameters_and_names": [n for n, _ in net.parameters_and_names()],
        "param_names": [p.name for p in net.get_parameters()],
        "trainable": [p.name for p in net.trainable_params()],
        "untrainable": [p.name for p in net.untrainable_params()],
        "own_params_body": [p.name for p in net.body.get_parameters(expand=False)],
        "fc_weight_shape": list(net.fc.weight.shape),
        "optimizer_params": [p.name for p in opt._parameters],
        "saved": saved,
    }


def readback_one(path):
    crc = "crc" in os.path.basename(path)
    try:
        d = ms.load_checkpoint(path, format="safetensors", crc_check=crc)
        ents = [{"name": k, "dtype": str(v.dtype), "shape": list(v.shape),
                 "values": [float(x) for x in v.asnumpy().astype(np.float64).reshape(-1)]}
                for k, v in d.items()]
        return {"file": os.path.basename(path), "crc_check": crc, "loaded": True, "entries": ents}
    except Exception as e:  # noqa: BLE001 — the error is the finding
        return {"file": os.path.basename(path), "crc_check": crc, "loaded": False,
                "error": str(e).splitlines()[0][:300]}


def readback(paths):
    for path in paths:
        print(json.dumps(readback_one(path)))


def spore_safetensors():
    import subprocess
    out = "spec/fixtures/spore_written"
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, SPORE_LIB=os.path.abspath("build/libspore.so"))
    subprocess.run(["luajit", "scripts/gen/spore_safetensors_sample.lua", out], check=True, env=env)
    subprocess.run(["luajit", "scripts/convert.lua", "spec/fixtures/ms_momentum.ckpt",
                    out + "/convert_ms_momentum.safetensors"], check=True, env=env, stdout=subprocess.DEVNULL)
    files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    res = {"made_by": "scripts/gen/gen_ms_fidelity_optim.py --safetensors",
           "versions": {"mindspore": ms.__version__},
           "files": [readback_one(os.path.join(out, f)) for f in files]}
    # the converted file must hold what MindSpore itself reads from the .ckpt
    src = ms.load_checkpoint("spec/fixtures/ms_momentum.ckpt")
    res["convert_source"] = [{"name": k, "values": [float(x) for x in v.asnumpy().astype(np.float64).reshape(-1)]}
                             for k, v in src.items()]
    # a grouped-lr optimizer checkpoint written by spore, loaded into MindSpore's own optimizer
    ps = make_params()
    opt = nn.Momentum([{"params": [ps[0]], "lr": 0.05, "weight_decay": 0.01}, {"params": ps[1:]}],
                      learning_rate=0.7, momentum=0.5)  # other values: the checkpoint must replace them
    pnl, cnl = ms.load_param_into_net(opt, ms.load_checkpoint(out + "/spore_momentum_groups.ckpt"))
    own = {e["name"]: e for e in CASES["momentum_groups_lr"]()["ckpt"]}
    worst = 0.0
    loaded = {}
    for name, par in opt.parameters_and_names():
        a = par.asnumpy().astype(np.float64).reshape(-1)
        b = np.array(own[par.name]["values"], dtype=np.float64)
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))) if a.size else 0.0
        worst = max(worst, rel)
        loaded[par.name] = rel
    res["spore_ckpt_into_mindspore"] = {"file": "spore_momentum_groups.ckpt", "param_not_load": pnl,
                                        "ckpt_not_load": cnl, "max_rel_err_vs_mindspore_run": worst,
                                        "rel_err_by_name": loaded}
    print("spore_momentum_groups.ckpt into MindSpore's Momentum: param_not_load", pnl, "ckpt_not_load", cnl,
          "max rel err vs MindSpore's own 3 steps", worst)
    with open("spec/fixtures/ms_safetensors_readback.json", "w") as f:
        json.dump(res, f, indent=0)
        f.write("\n")
    for r in res["files"]:
        print(r["file"], "loaded" if r["loaded"] else "FAILED: " + r["error"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="spec/fixtures/ms_optim_fidelity.json")
    ap.add_argument("--readback", nargs="*")
    ap.add_argument("--safetensors", action="store_true")
    a = ap.parse_args()
    if a.safetensors:
        spore_safetensors()
        return 0
    if a.readback is not None:
        readback(a.readback)
        return 0
    res = {"made_by": "scripts/gen/gen_ms_fidelity_optim.py",
           "versions": {"mindspore": ms.__version__, "numpy": np.__version__},
           "inputs": {"fc.weight": lst(W0), "fc.bias": lst(B0), "bn.gamma": lst(G0), "conv.weight": lst(C0),
                      "grads": [[lst(x) for x in grads(s)] for s in range(3)]},
           "cases": {}}
    res["cells"] = cells_case()
    for name, fn in CASES.items():
        try:
            res["cases"][name] = fn()
        except Exception as e:  # noqa: BLE001
            res["cases"][name] = {"error": str(e).splitlines()[0][:300]}
        print(name, "error" in res["cases"][name] and res["cases"][name]["error"] or "ok")
    with open(a.out, "w") as f:
        json.dump(res, f, indent=0, sort_keys=False)
        f.write("\n")
    print("wrote", a.out, os.path.getsize(a.out), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
