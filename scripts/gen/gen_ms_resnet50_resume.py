#!/usr/bin/env python3
"""gen_ms_resnet50_resume.py — MindSpore's side of the ResNet50 zoo-recipe resume check (issue #10).

MindSpore 2.10 runs the model zoo's ResNet50 recipe (official/cv/ResNet/train.py with
config/resnet50_imagenet2012_config.yaml: CrossEntropySmooth(sparse, "mean", 0.1, 1001),
Momentum(0.9) with the zoo's decay groups (weight decay 1e-4 except beta/gamma/bias,
order_params), loss_scale=1024 with FixedLossScaleManager(1024, drop_overflow_update=False),
the linear get_lr array) on a fixed, learnable dataset, as a user would, twice:

  1. "the earlier run" trains resnet50(class_num=1001) from the zoo's own initialisers
     (ms.set_seed(1), np.random.seed(1)) for 8 epochs of 4 steps (epochs 82..89, counted as
     Model.train(89, ds, initial_epoch=81) counts them) at a constant lr of 0.005 — the recipe's
     lr array from a random init blows the loss up (6.9 -> 45 within 8 steps even at epoch 87's
     0.027), so the earlier run is a short pre-training that brings the net into a stable regime
     (loss 6.9 -> about 1.8) — and MindSpore's own ModelCheckpoint(prefix="resnet",
     CheckpointConfig(save_checkpoint_steps=4, append_info=[{"epoch_num": 0, "step_num": 0}]))
     writes resnet-89_4.ckpt (epoch_num 89, step_num 32): the network with its BatchNorm
     statistics, then the optimizer's state;
  2. "the resume" is train.py's resume path: load_checkpoint(filter_prefix=['learning_rate',
     'global_step']), start_epoch = epoch_num (89), lr = get_lr(..., start_epoch, ...) — the
     recipe's array for 4 steps an epoch, from its last epoch: 0.00909, 0.00682, 0.00455 —,
     a fresh net (another seed), load_param_into_net(net) and (opt), then 3 steps on the first
     3 batches of the dataset (the start of epoch 90); then the same resume with every image
     one ulp up (x * (1 + 2^-23) in float32): MindSpore's own float32 noise floor.

Differences from the zoo's GPU/Ascend run, forced by a CPU oracle: amp_level "O0" (float32;
spore has no float16 training), dataset_sink_mode off, batch 16 of 32 x 32 images, and the
loops of Model.train written out (MindSpore's dataset pipeline does not run with this venv's
NumPy 2): Model's own train network once per batch, ModelCheckpoint.step_end with the counters
Model.train keeps.

The dataset: 64 images of 10 classes (labels 0..9 of the 1001), each a smooth per-class colour
pattern plus Gaussian noise (numpy RandomState(2026)), 4 batches of 16 in a fixed order.

Writes (OUT, default build/zoo_resnet50/, not committed — about 800 MB):
  resnet-89_4.ckpt  the earlier run's checkpoint (resume.ckpt: a hard link to it)
  inputs.ckpt       the 4 batches (x0..x3, y0..y3)
  after.ckpt        MindSpore's train network after the 3 resumed steps
  after_ulp.ckpt    the same, images one ulp up
  losses.json       the 3 losses (and with images one ulp up), the earlier run's 32, the lr
                    of the 3 steps
and the committed summary spec/fixtures/ms_resnet50_resume.json: the same figures, and per
tensor of after.ckpt its sum, sum of squares and 8 sampled values.

The zoo definition is NOT part of this repository: lay out official/cv/ResNet/src/resnet.py
(commit e60768e9c89095fdfd7bdef9922ee730fdbc4b7e, sha256 6dfa73fe...) as described in
scripts/gen/gen_resnet_names.py and pass --zoo. The zoo's CrossEntropySmooth and get_lr
(linear mode) are restated below from their formulas.

  /work/venv/bin/python scripts/gen/gen_ms_resnet50_resume.py --zoo /tmp/zoo [--resume-only]

(about 2.5 CPU-minutes for the earlier run, 1 for the two resumes; --resume-only reuses OUT's
earlier-run checkpoint.)
"""
import argparse, hashlib, json, os, sys, time

import numpy as np
import mindspore as ms
from mindspore import nn, ops, Tensor
from mindspore.nn import LossBase

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

# the recipe (config/resnet50_imagenet2012_config.yaml), at a CPU oracle's size: batch 16 of
# 32 x 32 images, a fixed dataset of 64 images (steps_per_epoch 4), so get_lr's array is the
# recipe's own (linear mode: warm-up 2 epochs to 0.8, linear decay to 0 at epoch 90) for 4 steps
# an epoch.
CFG = dict(class_num=1001, batch_size=16, loss_scale=1024, momentum=0.9, weight_decay=0.0001, epoch_size=90,
           warmup_epochs=2, lr_decay_mode="linear", label_smooth_factor=0.1, lr_init=0.0, lr_max=0.8, lr_end=0.0,
           steps_per_epoch=4, image_size=32, classes_used=10)
# the earlier run trains epochs PRE_FROM+1 .. START_EPOCH (as train.py resumed at PRE_FROM would:
# lr array from PRE_FROM, ModelCheckpoint(append_info=[{"epoch_num": 0, "step_num": 0}]) at the
# end of each epoch); the resume then runs train.py's resume path from START_EPOCH
PRE_FROM, START_EPOCH, PRE_LR = 81, 89, 0.005


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


def build(resnet50, start_epoch, const_lr=None):
    net = resnet50(class_num=CFG["class_num"])
    if const_lr is not None:
        lr = const_lr
    else:
        lr = Tensor(get_lr_linear(CFG["lr_init"], CFG["lr_end"], CFG["lr_max"], CFG["warmup_epochs"],
                                  CFG["epoch_size"], start_epoch, CFG["steps_per_epoch"]))
    opt = nn.Momentum(group_params(net, CFG["weight_decay"]), lr, CFG["momentum"], loss_scale=CFG["loss_scale"])
    loss = CrossEntropySmooth(sparse=True, reduction="mean", smooth_factor=CFG["label_smooth_factor"],
                              num_classes=CFG["class_num"])
    ls = ms.FixedLossScaleManager(CFG["loss_scale"], drop_overflow_update=False)
    model = ms.Model(net, loss_fn=loss, optimizer=opt, loss_scale_manager=ls, metrics={"acc"}, amp_level="O0")
    return net, opt, model


def run_steps(model, xs, ys, quiet=False):
    tn = model._train_network
    tn.set_train()
    losses = []
    for x, y in zip(xs, ys):
        t0 = time.time()
        out = tn(Tensor(x), Tensor(y))
        losses.append(float(np.asarray(out.asnumpy()).reshape(-1)[0]))
        if not quiet:
            print("  step loss %.7f (%.1f s)" % (losses[-1], time.time() - t0), flush=True)
    return losses


def dataset():
    """A fixed, learnable dataset: 64 images of 10 classes (labels 0..9 of the 1001), each a
    smooth per-class colour pattern plus noise, 4 batches of 16 in a fixed order."""
    rng = np.random.RandomState(2026)
    S, B, K = CFG["image_size"], CFG["batch_size"], CFG["classes_used"]
    yy, xx = np.meshgrid(np.linspace(-1, 1, S), np.linspace(-1, 1, S), indexing="ij")
    templates = []
    for k in range(K):
        f = rng.uniform(0.5, 3.0, size=(3, 2))
        ph = rng.uniform(0, 2 * np.pi, size=3)
        templates.append(np.stack([np.sin(np.pi * (f[c, 0] * xx + f[c, 1] * yy) + ph[c]) for c in range(3)]))
    n = CFG["steps_per_epoch"] * B
    labels = np.array([i % K for i in range(n)])
    rng.shuffle(labels)
    imgs = np.stack([templates[l] + 0.5 * rng.randn(3, S, S) for l in labels]).astype(np.float32)
    xs = [imgs[i * B:(i + 1) * B] for i in range(CFG["steps_per_epoch"])]
    ys = [labels[i * B:(i + 1) * B].astype(np.int32) for i in range(CFG["steps_per_epoch"])]
    return xs, ys


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
    global PRE_FROM
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", required=True, help="directory holding src/resnet.py (the zoo layout)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "zoo_resnet50"))
    ap.add_argument("--summary", default=os.path.join(ROOT, "spec", "fixtures", "ms_resnet50_resume.json"))
    ap.add_argument("--resume-only", action="store_true", help="reuse OUT's earlier-run checkpoint")
    ap.add_argument("--pre-from", type=int, default=PRE_FROM, help="the earlier run's first epoch - 1 (default %(default)s)")
    a = ap.parse_args()
    PRE_FROM = a.pre_from
    zoo_file = os.path.join(a.zoo, "src", "resnet.py")
    if not os.path.isfile(zoo_file):
        sys.exit("no %s: see scripts/gen/gen_resnet_names.py for how to get the zoo file" % zoo_file)
    sys.path.insert(0, a.zoo)
    from src.resnet import resnet50  # noqa: E402  (the zoo's own definition)
    os.makedirs(a.out, exist_ok=True)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")

    xs, ys = dataset()
    inputs = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        inputs.append({"name": "x%d" % i, "data": Tensor(x)})
        inputs.append({"name": "y%d" % i, "data": Tensor(y)})
    ms.save_checkpoint(inputs, os.path.join(a.out, "inputs.ckpt"))
    spe = CFG["steps_per_epoch"]

    # 1. the earlier run: Model.train(START_EPOCH, ds, initial_epoch=PRE_FROM) from the zoo's
    # random init, with ModelCheckpoint(append_info=[{"epoch_num": 0, "step_num": 0}]) at each
    # epoch's end, as train.py sets it up. Model.train needs MindSpore's dataset pipeline, which
    # does not run with this venv's NumPy 2, so its loop is written out: the train network once
    # per batch, ModelCheckpoint.step_end with the counters Model.train keeps (cur_epoch_num
    # PRE_FROM+1 .., cur_step_num from 1).
    resume = os.path.join(a.out, "resnet-%d_%d.ckpt" % (START_EPOCH, spe))
    if a.resume_only:
        with open(os.path.join(a.out, "losses.json")) as f:
            old = json.load(f)
        pre_losses, pre_seconds = old["pre_losses"], old.get("pre_seconds")
    else:
        print("earlier run: epochs %d..%d, %d steps" % (PRE_FROM + 1, START_EPOCH, (START_EPOCH - PRE_FROM) * spe),
              flush=True)
        t0 = time.time()
        ms.set_seed(1)
        np.random.seed(1)
        net0, _, model = build(resnet50, PRE_FROM, PRE_LR)
        for f in os.listdir(a.out):
            if f.startswith("resnet-") and f.endswith(".ckpt"):
                os.remove(os.path.join(a.out, f))
        ck = ms.train.ModelCheckpoint(prefix="resnet", directory=a.out, config=ms.train.CheckpointConfig(
            save_checkpoint_steps=spe, keep_checkpoint_max=1, append_info=[{"epoch_num": 0, "step_num": 0}]))
        cbp = ms.train.callback._InternalCallbackParam()
        cbp.train_network, cbp.batch_num, cbp.epoch_num = model._train_network, spe, START_EPOCH
        cbp.cur_step_num = 0
        pre_losses = []
        for epoch in range(PRE_FROM + 1, START_EPOCH + 1):
            cbp.cur_epoch_num = epoch
            el = run_steps(model, xs, ys, quiet=True)
            pre_losses += el
            for _ in el:
                cbp.cur_step_num += 1
                ck.step_end(ms.train.RunContext(cbp))
            print("  epoch %d: losses %s (%.0f s)" % (epoch, " ".join("%.4f" % v for v in el), time.time() - t0),
                  flush=True)
        assert os.path.isfile(resume), "ModelCheckpoint wrote no " + resume
        pre_seconds = time.time() - t0

    # 2. the resume, as train.py does it: the first 3 steps of epoch START_EPOCH + 1; then again
    # with every image one ulp up (x * (1 + 2^-23), rounded to nearest): MindSpore's own float32
    # noise floor, beside spore's
    def resume_run(perturb):
        print("resume from %s (3 steps%s)" % (resume, ", images one ulp up" if perturb else ""), flush=True)
        resume_param = ms.load_checkpoint(resume, filter_prefix=['learning_rate', 'global_step'])
        start_epoch = int(resume_param.get('epoch_num', Tensor(0, ms.int32)).asnumpy().item())
        step_num = int(resume_param.get('step_num', Tensor(0, ms.int32)).asnumpy().item())
        ms.set_seed(7)
        np.random.seed(7)  # a different init: everything must come from the checkpoint
        net, opt, model = build(resnet50, start_epoch)
        ms.load_param_into_net(net, resume_param)
        ms.load_param_into_net(opt, resume_param)
        lr3 = [float(v) for v in opt.learning_rate.learning_rate.asnumpy()[:3]]
        up = np.float32(1 + 2.0 ** -23)
        losses = run_steps(model, [x * up if perturb else x for x in xs[:3]], ys[:3])
        return model, losses, start_epoch, step_num, lr3

    t0 = time.time()
    model, losses, start_epoch, step_num, lr3 = resume_run(False)
    after = os.path.join(a.out, "after.ckpt")
    ms.save_checkpoint(model._train_network, after)
    if os.path.exists(os.path.join(a.out, "resume.ckpt")):
        os.remove(os.path.join(a.out, "resume.ckpt"))
    os.link(resume, os.path.join(a.out, "resume.ckpt"))
    with open(os.path.join(a.out, "losses.json"), "w") as f:
        json.dump({"losses": losses, "start_epoch": start_epoch, "step_num": step_num, "lr": lr3,
                   "pre_losses": pre_losses}, f)
    resume_seconds = time.time() - t0
    model_u, losses_ulp, _, _, _ = resume_run(True)
    ms.save_checkpoint(model_u._train_network, os.path.join(a.out, "after_ulp.ckpt"))
    with open(os.path.join(a.out, "losses.json"), "w") as f:
        json.dump({"losses": losses, "losses_ulp": losses_ulp, "start_epoch": start_epoch, "step_num": step_num,
                   "lr": lr3, "pre_losses": pre_losses, "pre_seconds": pre_seconds}, f)

    zoo_bytes = open(zoo_file, "rb").read()
    res = {"mindspore": ms.__version__, "zoo_resnet_sha256": hashlib.sha256(zoo_bytes).hexdigest(), "config": CFG,
           "pre_from": PRE_FROM, "start_epoch": start_epoch, "step_num": step_num, "lr": lr3, "losses": losses,
           "losses_ulp": losses_ulp,
           "pre_losses": pre_losses, "seconds": {"earlier_run": pre_seconds, "resume": resume_seconds},
           "resume_sha256": hashlib.sha256(open(resume, "rb").read()).hexdigest(),
           "inputs_sha256": hashlib.sha256(open(os.path.join(a.out, "inputs.ckpt"), "rb").read()).hexdigest(),
           "after": summary(ms.load_checkpoint(after))}
    with open(a.summary, "w") as f:
        json.dump(res, f, separators=(",", ":"))
    print("wrote", a.summary, os.path.getsize(a.summary), "bytes; losses", losses)


if __name__ == "__main__":
    main()
