#!/usr/bin/env python3
"""gen_ms_resnet50_resume.py — MindSpore's side of the ResNet50 zoo-recipe resume check (issue #10).

MindSpore 2.10 runs the model zoo's ResNet50 recipe (official/cv/ResNet/train.py with
config/resnet50_imagenet2012_config.yaml) twice, as a user would:

  1. "the earlier run": resnet50(class_num=1001) from the zoo, ms.set_seed(1) and
     np.random.seed(1) for its initialisers, trained 3 steps from epoch 0 (batches A) and
     saved with ms.save_checkpoint(train network, append_dict={"epoch_num": 88, "step_num": 3})
     — the network with its BatchNorm statistics, then the optimizer's state — as the zoo's
     ModelCheckpoint(append_info=[{"epoch_num": 0, "step_num": 0}]) writes it;
  2. "the resume": train.py's resume path: load_checkpoint(filter_prefix=['learning_rate',
     'global_step']), start_epoch = epoch_num, lr = get_lr(..., start_epoch, ...), groups
     from init_group_params (weight decay 1e-4 except beta/gamma/bias, order_params),
     Momentum(groups, lr, 0.9, loss_scale=1024), CrossEntropySmooth(sparse, "mean", 0.1, 1001),
     Model(..., loss_scale_manager=FixedLossScaleManager(1024, drop_overflow_update=False)),
     load_param_into_net(net) and (opt), then 3 steps on batches B.

Differences from the zoo's GPU/Ascend run, forced by a CPU oracle: amp_level "O0" (float32;
spore has no float16 training), dataset_sink_mode off, and Model's own train network is
called once per batch (MindSpore's dataset pipeline does not run with this venv's NumPy 2).
Images are 2 x 3 x 64 x 64 (batch 2), steps_per_epoch is the recipe's 5004 (ImageNet at
batch 256), so the lr array is the recipe's own.

Writes (OUT, default build/zoo_resnet50/, not committed — about 400 MB):
  resume.ckpt   the earlier run's checkpoint (what spore resumes)
  inputs.ckpt   batches A and B (x_a0.., y_a0.., x_b0.., y_b0..)
  after.ckpt    MindSpore's train network after the 3 resumed steps
  losses.json   the 3 losses
and the committed summary spec/fixtures/ms_resnet50_resume.json: losses, and per tensor of
after.ckpt its sum, sum of squares and 8 sampled values.

The zoo definition is NOT part of this repository: lay out official/cv/ResNet/src/resnet.py
(commit e60768e9c89095fdfd7bdef9922ee730fdbc4b7e, sha256 6dfa73fe...) as described in
scripts/gen/gen_resnet_names.py and pass --zoo. The zoo's CrossEntropySmooth and get_lr
(linear mode) are restated below from their formulas.

  /work/venv/bin/python scripts/gen/gen_ms_resnet50_resume.py --zoo /tmp/zoo
"""
import argparse, hashlib, json, os, sys, time

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Tensor
from mindspore.nn import LossBase

START_EPOCH = 88
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

# the recipe (config/resnet50_imagenet2012_config.yaml)
CFG = dict(class_num=1001, batch_size=2, loss_scale=1024, momentum=0.9, weight_decay=0.0001, epoch_size=90,
           warmup_epochs=2, lr_decay_mode="linear", label_smooth_factor=0.1, lr_init=0.0, lr_max=0.8, lr_end=0.0,
           steps_per_epoch=5004, image_size=64)


class CrossEntropySmooth(LossBase):
    """The zoo's loss, restated: OneHot(on = 1 - f, off = f / (K - 1)) -> SoftmaxCrossEntropyWithLogits."""

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


def get_lr_linear(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, start_epoch, steps_per_epoch):
    """The zoo's get_lr in its default ("linear") mode, restated: linear warm-up from lr_init
    to lr_max, then linear decay to lr_end, from step start_epoch*steps_per_epoch on, float32."""
    total, warm = steps_per_epoch * total_epochs, steps_per_epoch * warmup_epochs
    out = [lr_init + (lr_max - lr_init) * i / warm if i < warm else
           lr_max - (lr_max - lr_end) * (i - warm) / (total - warm) for i in range(total)]
    return np.array(out[steps_per_epoch * start_epoch:]).astype(np.float32)


def group_params(net, wd):
    decayed, other = [], []
    for p in net.trainable_params():
        if 'beta' not in p.name and 'gamma' not in p.name and 'bias' not in p.name:
            decayed.append(p)
        else:
            other.append(p)
    return [{'params': decayed, 'weight_decay': wd}, {'params': other}, {'order_params': net.trainable_params()}]


def build(resnet50, start_epoch):
    net = resnet50(class_num=CFG["class_num"])
    lr = Tensor(get_lr_linear(CFG["lr_init"], CFG["lr_end"], CFG["lr_max"], CFG["warmup_epochs"], CFG["epoch_size"],
                              start_epoch, CFG["steps_per_epoch"]))
    opt = nn.Momentum(group_params(net, CFG["weight_decay"]), lr, CFG["momentum"], loss_scale=CFG["loss_scale"])
    loss = CrossEntropySmooth(sparse=True, reduction="mean", smooth_factor=CFG["label_smooth_factor"],
                              num_classes=CFG["class_num"])
    ls = ms.FixedLossScaleManager(CFG["loss_scale"], drop_overflow_update=False)
    model = ms.Model(net, loss_fn=loss, optimizer=opt, loss_scale_manager=ls, metrics={"acc"}, amp_level="O0")
    return net, opt, model


def run_steps(model, xs, ys):
    tn = model._train_network
    tn.set_train()
    losses = []
    for x, y in zip(xs, ys):
        t0 = time.time()
        out = tn(Tensor(x), Tensor(y))
        losses.append(float(np.asarray(out.asnumpy()).reshape(-1)[0]))
        print("  step loss %.7f (%.1f s)" % (losses[-1], time.time() - t0), flush=True)
    return losses


def summary(ckpt):
    out = {}
    for name, p in ckpt.items():
        if not hasattr(p, "asnumpy"):
            continue
        a = p.asnumpy()
        f = a.astype(np.float64).reshape(-1)
        n = f.size
        idx = sorted(set(int(i * n // 8) for i in range(8))) if n else []
        out[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "sum": float(f.sum()), "sumsq": float((f * f).sum()),
                     "idx": idx, "val": [float(f[i]) for i in idx]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", required=True, help="directory holding src/resnet.py (the zoo layout)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "zoo_resnet50"))
    ap.add_argument("--summary", default=os.path.join(ROOT, "spec", "fixtures", "ms_resnet50_resume.json"))
    a = ap.parse_args()
    zoo_file = os.path.join(a.zoo, "src", "resnet.py")
    if not os.path.isfile(zoo_file):
        sys.exit("no %s: see scripts/gen/gen_resnet_names.py for how to get the zoo file" % zoo_file)
    sys.path.insert(0, a.zoo)
    from src.resnet import resnet50  # noqa: E402  (the zoo's own definition)
    os.makedirs(a.out, exist_ok=True)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")

    rng = np.random.RandomState(2026)
    S, B = CFG["image_size"], CFG["batch_size"]
    xa = [rng.randn(B, 3, S, S).astype(np.float32) for _ in range(3)]
    ya = [rng.randint(0, CFG["class_num"], size=B).astype(np.int32) for _ in range(3)]
    xb = [rng.randn(B, 3, S, S).astype(np.float32) for _ in range(3)]
    yb = [rng.randint(0, CFG["class_num"], size=B).astype(np.int32) for _ in range(3)]
    inputs = []
    for tag, xs, ys in (("a", xa, ya), ("b", xb, yb)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            inputs.append({"name": "x_%s%d" % (tag, i), "data": Tensor(x)})
            inputs.append({"name": "y_%s%d" % (tag, i), "data": Tensor(y)})
    ms.save_checkpoint(inputs, os.path.join(a.out, "inputs.ckpt"))

    # 1. the earlier run: 3 steps from epoch 0, saved with the zoo's append_info
    print("earlier run (3 steps from epoch 0)", flush=True)
    ms.set_seed(1)
    np.random.seed(1)
    _, _, model = build(resnet50, 0)
    run_steps(model, xa, ya)
    resume = os.path.join(a.out, "resume.ckpt")
    # labelled as written at the end of epoch 88 (of 90): the resume then runs the recipe's
    # lr array from there (about 0.018, decaying linearly); at epoch 1 its 0.4 with batch 2
    # blows the loss up to hundreds within 2 steps, which compares nothing but chaos
    ms.save_checkpoint(model._train_network, resume, append_dict={"epoch_num": START_EPOCH, "step_num": 3})

    # 2. the resume, as train.py does it
    print("resume (3 steps from epoch %d)" % START_EPOCH, flush=True)
    resume_param = ms.load_checkpoint(resume, filter_prefix=['learning_rate', 'global_step'])
    start_epoch = int(resume_param.get('epoch_num', Tensor(0, ms.int32)).asnumpy().item())
    ms.set_seed(7)
    np.random.seed(7)  # a different init: everything must come from the checkpoint
    net, opt, model = build(resnet50, start_epoch)
    ms.load_param_into_net(net, resume_param)
    ms.load_param_into_net(opt, resume_param)
    losses = run_steps(model, xb, yb)
    after = os.path.join(a.out, "after.ckpt")
    ms.save_checkpoint(model._train_network, after)
    with open(os.path.join(a.out, "losses.json"), "w") as f:
        json.dump({"losses": losses, "start_epoch": start_epoch}, f)

    zoo_bytes = open(zoo_file, "rb").read()
    res = {"mindspore": ms.__version__, "zoo_resnet_sha256": hashlib.sha256(zoo_bytes).hexdigest(), "config": CFG,
           "start_epoch": start_epoch, "losses": losses,
           "resume_sha256": hashlib.sha256(open(resume, "rb").read()).hexdigest(),
           "inputs_sha256": hashlib.sha256(open(os.path.join(a.out, "inputs.ckpt"), "rb").read()).hexdigest(),
           "after": summary(ms.load_checkpoint(after))}
    with open(a.summary, "w") as f:
        json.dump(res, f, separators=(",", ":"))
    print("wrote", a.summary, os.path.getsize(a.summary), "bytes; losses", losses)


if __name__ == "__main__":
    main()
