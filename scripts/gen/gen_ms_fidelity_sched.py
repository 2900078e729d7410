#!/usr/bin/env python3
"""gen_ms_fidelity_sched.py — MindSpore 2.10 goldens for spore's learning rates, losses and
loss scale (issue #10). Run by hand (never by `make test`):

  /work/venv/bin/python scripts/gen/gen_ms_fidelity_sched.py   # writes spec/fixtures/ms_fidelity_sched.json

Records:
  * every mindspore.nn dynamic-lr function (lr arrays, as MindSpore returns them);
  * every LearningRateSchedule class evaluated at global_step 0..N (float32 Tensor values);
  * mindspore.nn.CrossEntropyLoss values and d(loss)/d(logits) (class-index targets with
    weight, ignore_index, label_smoothing and each reduction; probability targets);
  * the model zoo's CrossEntropySmooth (value and gradient);
  * 3 Momentum steps (weight decay 1e-4, loss_scale=1024) through
    Model(..., loss_scale_manager=FixedLossScaleManager(1024, drop_overflow_update=False))
    on a small Dense-ReLU-Dense net: losses and every weight after each step;
  * 6 steps of TrainOneStepWithLossScaleCell with DynamicLossScaleUpdateCell (overflow
    forced by the initial scale): loss, overflow flag and scale per step, final weights;
  * what an lr array that runs out does (the error MindSpore raises, or the values).
"""
import json, math, os, sys

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Tensor, Parameter
from mindspore.nn import LossBase

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "spec", "fixtures", "ms_fidelity_sched.json")


def f32list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def dynamic_lr():
    D = nn.dynamic_lr
    cases = []

    def add(fn, args):
        cases.append({"fn": fn, "args": args, "lr": [float(v) for v in getattr(D, fn)(*args)]})

    add("piecewise_constant_lr", [[2, 5, 10], [0.1, 0.05, 0.01]])
    for stair in (False, True):
        add("exponential_decay_lr", [0.1, 0.9, 20, 2, 3, stair])
        add("natural_exp_decay_lr", [0.1, 0.9, 20, 2, 3, stair])
        add("inverse_decay_lr", [0.1, 0.5, 20, 2, 3, stair])
    add("cosine_decay_lr", [0.01, 0.1, 20, 2, 4])
    add("cosine_decay_lr", [0.0, 0.8, 13, 3, 2])
    add("polynomial_decay_lr", [0.1, 0.01, 20, 2, 3, 0.5])
    add("polynomial_decay_lr", [0.1, 0.01, 20, 2, 3, 0.5, True])
    add("polynomial_decay_lr", [0.5, 0.0, 11, 1, 4, 2.0, True])
    add("warmup_lr", [0.1, 20, 2, 3])
    return cases


def schedules():
    S = nn.learning_rate_schedule
    cases = []
    steps = list(range(0, 13))

    def add(cls, args):
        sch = getattr(S, cls)(*args)
        vals = [float(sch(Tensor(s, ms.int32)).asnumpy().reshape(-1)[0]) for s in steps]
        cases.append({"cls": cls, "args": args, "steps": steps, "values": vals})

    for stair in (False, True):
        add("ExponentialDecayLR", [0.1, 0.9, 4, stair])
        add("NaturalExpDecayLR", [0.1, 0.9, 4, stair])
        add("InverseDecayLR", [0.1, 0.5, 4, stair])
    add("CosineDecayLR", [0.01, 0.1, 10])
    add("PolynomialDecayLR", [0.1, 0.01, 5, 0.5])
    add("PolynomialDecayLR", [0.1, 0.01, 5, 0.5, True])
    add("WarmUpLR", [0.1, 5])
    return cases


class CrossEntropySmooth(LossBase):
    """The model zoo's label-smoothing loss (official/cv/ResNet/src/CrossEntropySmooth.py),
    restated: sparse labels -> OneHot(depth = logits' classes, on = 1 - f, off = f / (K - 1),
    float32 Tensors) -> nn.SoftmaxCrossEntropyWithLogits(reduction)."""

    def __init__(self, sparse=True, reduction='mean', smooth_factor=0., num_classes=1000):
        super().__init__()
        self.sparse = sparse
        self.on = Tensor(1.0 - smooth_factor, ms.float32)
        self.off = Tensor(1.0 * smooth_factor / (num_classes - 1), ms.float32)
        self.onehot = ops.OneHot()
        self.sce = nn.SoftmaxCrossEntropyWithLogits(reduction=reduction)

    def construct(self, logits, labels):
        if self.sparse:
            labels = self.onehot(labels, logits.shape[1], self.on, self.off)
        return self.sce(logits, labels)


def zoo_get_lr(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch, steps_per_epoch, mode):
    """The zoo's get_lr (official/cv/ResNet/src/lr_generator.py), restated from its formulas:
    the schedule over all steps, then from step start_epoch*steps_per_epoch on, as float32."""
    total = steps_per_epoch * total_epochs
    warm = steps_per_epoch * warmup_epochs
    out = []
    for i in range(total):
        if mode == 'steps':
            cut = [0.3 * total, 0.6 * total, 0.8 * total]
            v = lr_init + (lr_max - lr_init) * i / warm if i < warm else \
                lr_max * [1, 0.1, 0.01, 0.001][sum(i >= c for c in cut)]
        elif mode == 'step':
            cut = [0.2 * total, 0.5 * total, 0.7 * total, 0.9 * total]
            k = sum(i >= c for c in cut)
            v = 0.00005 if k == 4 else lr_max * [1, 0.1, 0.01, 0.001][k]
        elif mode == 'poly':
            if i < warm:
                v = float(lr_init) + ((float(lr_max) - float(lr_init)) / float(warm)) * float(i)
            else:
                base = 1.0 - (float(i) - float(warm)) / (float(total) - float(warm))
                v = max(float(lr_max) * base * base, 0.0)
        elif mode == 'cosine':
            if i < warm:
                v = float(lr_init) + (float(lr_max) - float(lr_init)) / float(warm) * (i + 1)
            else:
                d = total - warm
                v = lr_max * ((total - i) / d * (0.5 * (1 + math.cos(math.pi * 2 * 0.47 * i / d))) + 0.00001)
        else:
            v = lr_init + (lr_max - lr_init) * i / warm if i < warm else \
                lr_max - (lr_max - lr_end) * (i - warm) / (total - warm)
        out.append(v)
    return np.array(out[steps_per_epoch * start_epoch:]).astype(np.float32)


def zoo_lr():
    cases = []
    for mode in ("steps", "step", "poly", "cosine", "linear"):
        for args in ([0.0, 0.0, 0.8, 2, 10, 0, 5], [0.01, 0.0001, 0.1, 1, 6, 2, 7]):
            cases.append({"args": args + [mode], "lr": f32list(zoo_get_lr(*args, mode))})
    return cases


def loss_case(name, loss, x, t, kw):
    xt = Tensor(x)
    tt = Tensor(t)
    out = loss(xt, tt)
    g = ms.grad(lambda a: loss(a, tt).sum())(xt)
    return {"name": name, "kw": kw, "value": f32list(out.asnumpy()), "grad": f32list(g.asnumpy())}


def losses():
    rng = np.random.RandomState(7)
    N, C = 6, 5
    x = (rng.randn(N, C) * 2).astype(np.float32)
    t = np.array([1, 0, 4, 2, 4, 3], np.int32)
    t_ign = np.array([1, -100, 4, 2, -100, 3], np.int32)
    t_ign2 = np.array([1, 2, 4, 2, 0, 3], np.int32)  # ignore_index = 2
    w = np.array([0.5, 1.0, 2.0, 0.25, 1.5], np.float32)
    p = rng.rand(N, C).astype(np.float32)
    p = (p / p.sum(1, keepdims=True)).astype(np.float32)
    cases = []
    for red in ("mean", "sum", "none"):
        for ls in (0.0, 0.1):
            for wt in (None, w):
                for tname, tt, ign in (("t", t, -100), ("t_ign", t_ign, -100), ("t_ign2", t_ign2, 2)):
                    kw = {"reduction": red, "label_smoothing": ls, "ignore_index": ign}
                    if wt is not None:
                        kw["weight"] = f32list(wt)
                    loss = nn.CrossEntropyLoss(weight=None if wt is None else Tensor(wt), ignore_index=ign,
                                               reduction=red, label_smoothing=ls)
                    c = loss_case("ce_" + tname, loss, x, tt, kw)
                    c["target"] = tname
                    cases.append(c)
            for wt in (None, w):
                kw = {"reduction": red, "label_smoothing": ls}
                if wt is not None:
                    kw["weight"] = f32list(wt)
                loss = nn.CrossEntropyLoss(weight=None if wt is None else Tensor(wt), reduction=red,
                                           label_smoothing=ls)
                c = loss_case("ce_prob", loss, x, p, kw)
                c["target"] = "p"
                cases.append(c)
    for red in ("mean", "sum", "none"):
        for sf in (0.0, 0.1):
            loss = CrossEntropySmooth(sparse=True, reduction=red, smooth_factor=sf, num_classes=C)
            c = loss_case("ce_smooth", loss, x, t, {"sparse": True, "reduction": red, "smooth_factor": sf,
                                                     "num_classes": C})
            c["target"] = "t"
            cases.append(c)
    return {"x": f32list(x), "N": N, "C": C, "targets": {"t": t.tolist(), "t_ign": t_ign.tolist(),
            "t_ign2": t_ign2.tolist(), "p": f32list(p)}, "cases": cases}


class Small(nn.Cell):
    def __init__(self, w1, b1, w2, b2):
        super().__init__()
        self.fc1 = nn.Dense(6, 5, weight_init=Tensor(w1), bias_init=Tensor(b1))
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(5, 3, weight_init=Tensor(w2), bias_init=Tensor(b2))

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def small_init(rng):
    return ((rng.randn(5, 6) * 0.5).astype(np.float32), (rng.randn(5) * 0.1).astype(np.float32),
            (rng.randn(3, 5) * 0.5).astype(np.float32), (rng.randn(3) * 0.1).astype(np.float32))


def params_of(net):
    return {p.name: f32list(p.asnumpy()) for p in net.get_parameters()}


def loss_scale_fixed():
    rng = np.random.RandomState(3)
    w1, b1, w2, b2 = small_init(rng)
    xs = [(rng.randn(4, 6)).astype(np.float32) for _ in range(3)]
    ys = [rng.randint(0, 3, size=4).astype(np.int32) for _ in range(3)]
    net = Small(w1, b1, w2, b2)
    lr = [0.1, 0.05, 0.02]
    opt = nn.Momentum(net.trainable_params(), learning_rate=lr, momentum=0.9, weight_decay=1e-4, loss_scale=1024.0)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    model = ms.Model(net, loss_fn=loss, optimizer=opt,
                     loss_scale_manager=ms.FixedLossScaleManager(1024.0, drop_overflow_update=False))
    # Model's own train network (what Model.train runs per step; MindSpore's dataset pipeline
    # is not usable with this venv's NumPy 2), one call per batch
    tn = model._train_network
    tn.set_train()
    rec = []
    for x, y in zip(xs, ys):
        out = tn(Tensor(x), Tensor(y))
        rec.append({"loss": float(np.asarray(out.asnumpy()).reshape(-1)[0]), "params": params_of(net)})
    rec_type = type(tn).__name__
    return {"init": {"fc1.weight": f32list(w1), "fc1.bias": f32list(b1), "fc2.weight": f32list(w2),
                     "fc2.bias": f32list(b2)},
            "x": [f32list(a) for a in xs], "y": [a.tolist() for a in ys], "lr": lr, "momentum": 0.9,
            "weight_decay": 1e-4, "loss_scale": 1024.0, "steps": rec, "train_network": rec_type,
            "moments": {p.name: f32list(p.asnumpy()) for p in opt.moments}}


def loss_scale_dynamic():
    rng = np.random.RandomState(5)
    w1, b1, w2, b2 = small_init(rng)
    xs0 = [rng.randn(4, 6).astype(np.float32) for _ in range(6)]
    ys = [rng.randint(0, 3, size=4).astype(np.int32) for _ in range(6)]
    # overflow comes from the scale alone: inputs are scaled until every batch's largest
    # gradient (at the initial weights) is >= 8, so 2^127 * g overflows float32 (> 2^128)
    # with a wide margin, while 2^107 * g (after one decrease by 2^20) is far from it; the
    # losses stay finite (MindSpore's CPU softmax cross-entropy gives inf once a softmax
    # underflows to 0, spore's log-sum-exp does not)
    net0 = Small(w1, b1, w2, b2)
    lossf = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    wl0 = nn.WithLossCell(net0, lossf)
    mult = 1.0
    while True:
        Gs = []
        for x, y in zip(xs0, ys):
            g = ops.GradOperation(get_by_list=True)(wl0, net0.trainable_params())(Tensor(x * mult), Tensor(y))
            Gs.append(max(float(np.abs(a.asnumpy()).max()) for a in g))
        if min(Gs) >= 8 or mult >= 64:
            break
        mult *= 2
    xs = [(x * mult).astype(np.float32) for x in xs0]
    init = 2.0 ** 127
    net = Small(w1, b1, w2, b2)
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)
    wl = nn.WithLossCell(net, lossf)
    upd = nn.DynamicLossScaleUpdateCell(loss_scale_value=init, scale_factor=2 ** 20, scale_window=2)
    # MindSpore has no CPU kernel for its overflow status ops (NPUGetFloatStatusV2, FloatStatus):
    # the GPU check (FloatStatus: 1 when a gradient holds an Inf or NaN) is written with ops
    # that have one, everything else is MindSpore's own cell
    class CpuCell(nn.TrainOneStepWithLossScaleCell):
        def get_overflow_status(self, status, compute_output):
            flags = [ops.logical_not(ops.isfinite(g)).any() for g in compute_output]
            return ops.stack(flags).any()

    cell = CpuCell(wl, opt, scale_sense=upd)
    cell.set_train()
    rec = []
    for i in range(6):
        scale_before = float(cell.scale_sense.asnumpy().reshape(-1)[0])
        l, cond, scale = cell(Tensor(xs[i]), Tensor(ys[i]))
        rec.append({"loss": float(l.asnumpy().reshape(-1)[0]), "overflow": bool(cond.asnumpy()),
                    "scale_used": scale_before, "scale_after": float(cell.scale_sense.asnumpy().reshape(-1)[0]),
                    "params": params_of(net)})
    return {"init": {"fc1.weight": f32list(w1), "fc1.bias": f32list(b1), "fc2.weight": f32list(w2),
                     "fc2.bias": f32list(b2)},
            "x": [f32list(a) for a in xs], "y": [a.tolist() for a in ys], "lr": 0.01, "momentum": 0.9,
            "init_loss_scale": init, "scale_factor": 2 ** 20, "scale_window": 2, "input_mult": mult,
            "max_grad_at_init": Gs, "steps": rec}


def lr_runs_out():
    rng = np.random.RandomState(9)
    w1, b1, w2, b2 = small_init(rng)
    net = Small(w1, b1, w2, b2)
    opt = nn.Momentum(net.trainable_params(), learning_rate=[0.1, 0.05], momentum=0.9)
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")),
                               opt)
    x = Tensor(rng.randn(4, 6).astype(np.float32))
    y = Tensor(np.array([0, 1, 2, 0], np.int32))
    out = {"steps_ok": 0}
    try:
        for i in range(3):
            cell(x, y)
            out["steps_ok"] = i + 1
        out["error"] = None
    except Exception as e:  # noqa: BLE001 -- record what MindSpore does
        out["error"] = str(e).splitlines()[0][:300]
    return out


def main():
    res = {"mindspore": ms.__version__, "dynamic_lr": dynamic_lr(), "schedules": schedules(), "losses": losses(),
           "loss_scale_fixed": loss_scale_fixed(), "loss_scale_dynamic": loss_scale_dynamic(),
           "lr_runs_out": lr_runs_out(), "zoo_lr": zoo_lr()}
    def finite(v):  # JSON has no Inf/NaN: write them as strings
        if isinstance(v, float) and not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        if isinstance(v, dict):
            return {k: finite(a) for k, a in v.items()}
        if isinstance(v, list):
            return [finite(a) for a in v]
        return v

    with open(OUT, "w") as f:
        json.dump(finite(res), f, separators=(",", ":"))
    print("wrote", OUT, os.path.getsize(OUT), "bytes; lr_runs_out:", res["lr_runs_out"])
    dyn = res["loss_scale_dynamic"]
    print("dynamic: mult", dyn["input_mult"], "G", dyn["max_grad_at_init"])
    print("dynamic:", [(s["loss"], s["overflow"], s["scale_used"]) for s in dyn["steps"]])


if __name__ == "__main__":
    main()
