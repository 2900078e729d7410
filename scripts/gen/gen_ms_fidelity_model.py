#!/usr/bin/env python3
"""gen_ms_fidelity_model.py — MindSpore 2.10's Model, callbacks, metrics and ModelCheckpoint,
recorded for spec/train_fidelity_spec.lua (which compares spore against them; `make test`
never needs MindSpore).

  /work/venv/bin/python scripts/gen/gen_ms_fidelity_model.py   # writes spec/fixtures/ms_fidelity_model.json

Records:
  metrics        Precision / Recall / F1 / Fbeta(0.5) (per class and average), Accuracy,
                 TopKCategoricalAccuracy(1, 2, 3), ConfusionMatrix (each normalize), Loss
                 (batches of different sizes: per-batch mean), over fixed logits/labels.
  order          the names, shapes and dtypes MindSpore's save_checkpoint writes for
                 Model(net, loss, Momentum)._train_network (conv + BN + dense); order_frozen:
                 the names with conv.weight frozen.
  train          a Dense(4, 3) net from fixed weights, SoftmaxCrossEntropyWithLogits(sparse,
                 mean), Momentum(0.1, 0.9), 12 samples in batches of 4 (3 steps per epoch):
                   zoo_ckpt   ModelCheckpoint(save_checkpoint_steps=2, keep_checkpoint_max=10,
                              append_info=[{"epoch_num": 3, "step_num": 9}]) over 2 epochs:
                              each file's name, entry names in order, append values, weights;
                   resume     train(3, initial_epoch=1) with append_info=["epoch_num","step_num"]
                              and a recording callback: (hook, cur_epoch_num, cur_step_num,
                              epoch_num, batch_num) per hook; the files and their append values;
                              LossMonitor(2)'s lines;
                   fit        fit(4, valid_frequency=2) with metrics {"acc", "loss"}: the hook
                              trace (mode, counters), eval_results at epoch ends, History;
                   plateau    ReduceLROnPlateau(monitor="loss", mode="max", patience=1,
                              factor=0.5, cooldown=1): lr after each epoch;
                   early      EarlyStopping(monitor="loss", mode="max", patience=2): epochs run;
                   lrsched    LearningRateScheduler(lr*0.5 every 2nd step): lr per step.
"""
import contextlib, io, json, os, shutil, sys, tempfile

import numpy as np
import mindspore as ms
from mindspore import nn, Tensor
from mindspore.train import (Model, Callback, ModelCheckpoint, CheckpointConfig, Precision, Recall, F1, Fbeta,
                             Accuracy, TopKCategoricalAccuracy, ConfusionMatrix, Loss, EarlyStopping,
                             ReduceLROnPlateau, LearningRateScheduler, History, LossMonitor)
import mindspore.dataset as ds

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "spec", "fixtures", "ms_fidelity_model.json")


def f(a):
    return np.asarray(a, dtype=np.float64).tolist()


def metrics_golden(rng):
    n, c = 30, 4
    logits = rng.standard_normal((n, c)).astype(np.float32)
    labels = rng.integers(0, c, n).astype(np.int32)
    labels[:3] = 3  # make class 3 frequent, and class 2 rarely predicted
    batches = [(0, 8), (8, 20), (20, 30)]  # unequal batches: Loss averages per batch
    out = {"logits": logits.tolist(), "labels": labels.tolist(), "batches": batches}
    ms_ = {"precision": Precision(), "recall": Recall(), "f1": F1(), "f05": Fbeta(0.5), "acc": Accuracy(),
           "top1": TopKCategoricalAccuracy(1), "top2": TopKCategoricalAccuracy(2), "top3": TopKCategoricalAccuracy(3)}
    cms = {m: ConfusionMatrix(c, m) for m in ["no_norm", "target", "prediction", "all"]}
    loss = Loss()
    batch_losses = []
    for a, b in batches:
        for m in list(ms_.values()) + list(cms.values()):
            m.update(Tensor(logits[a:b]), Tensor(labels[a:b]))
        bl = float(rng.uniform(0.5, 2.0))
        batch_losses.append(bl)
        loss.update(Tensor(np.float32(bl)))
    out["batch_losses"] = batch_losses
    r = {}
    for k in ["precision", "recall", "f1", "f05"]:
        r[k] = f(ms_[k].eval())
        r[k + "_avg"] = float(ms_[k].eval(average=True))
    for k in ["acc", "top1", "top2", "top3"]:
        r[k] = float(ms_[k].eval())
    for m, cm in cms.items():
        r["cm_" + m] = f(cm.eval())
    r["loss"] = float(loss.eval())
    # one-hot labels give the same as class ids
    p1 = Precision()
    p1.update(Tensor(logits), Tensor(np.eye(c, dtype=np.float32)[labels]))
    r["precision_onehot"] = f(p1.eval())
    out["ms"] = r
    return out


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, has_bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Dense(2 * 4 * 4, 3)

    def construct(self, x):
        return self.fc(self.flat(self.bn(self.conv(x))))


def order_golden(tmp):
    net = Net()
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Momentum(net.trainable_params(), 0.1, 0.9)
    model = Model(net, loss, opt)
    p = os.path.join(tmp, "order.ckpt")
    ms.save_checkpoint(model._train_network, p)
    d = ms.load_checkpoint(p)
    res = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in d.items()]
    # with conv.weight frozen (requires_grad=False, not given to the optimizer)
    net = Net()
    net.conv.weight.requires_grad = False
    opt = nn.Momentum(net.trainable_params(), 0.1, 0.9)
    model = Model(net, loss, opt)
    ms.save_checkpoint(model._train_network, p)
    return res, list(ms.load_checkpoint(p).keys())


class Recorder(Callback):
    """(hook, mode, cur_epoch_num, cur_step_num, epoch_num, batch_num) per hook."""

    def __init__(self, extra=None):
        super().__init__()
        self.trace = []
        self.extra = extra

    def _rec(self, hook, rc):
        cb = rc.original_args()
        e = {"hook": hook, "mode": cb.get("mode"), "cur_epoch_num": cb.get("cur_epoch_num"),
             "cur_step_num": cb.get("cur_step_num"), "batch_num": cb.get("batch_num"),
             "epoch_num": cb.get("epoch_num")}
        if hook == "on_train_epoch_end" and cb.get("eval_results") is not None:
            e["eval_results"] = {k: float(v) for k, v in cb.get("eval_results").items()}
        if self.extra:
            e.update(self.extra(hook, cb))
        self.trace.append(e)

    def on_train_begin(self, rc): self._rec("on_train_begin", rc)
    def on_train_epoch_begin(self, rc): self._rec("on_train_epoch_begin", rc)
    def on_train_step_end(self, rc): self._rec("on_train_step_end", rc)
    def on_train_epoch_end(self, rc): self._rec("on_train_epoch_end", rc)
    def on_train_end(self, rc): self._rec("on_train_end", rc)
    def on_eval_begin(self, rc): self._rec("on_eval_begin", rc)
    def on_eval_step_end(self, rc): self._rec("on_eval_step_end", rc)
    def on_eval_end(self, rc): self._rec("on_eval_end", rc)


def lr_of(cb):
    return {"lr": float(cb.optimizer.learning_rate.asnumpy())}


def train_golden(rng, tmp):
    x = rng.standard_normal((12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12).astype(np.int32)
    vx = rng.standard_normal((8, 4)).astype(np.float32)
    vy = rng.integers(0, 3, 8).astype(np.int32)
    w0 = (rng.standard_normal((3, 4)) * 0.5).astype(np.float32)
    b0 = (rng.standard_normal(3) * 0.1).astype(np.float32)
    out = {"x": x.tolist(), "y": y.tolist(), "vx": vx.tolist(), "vy": vy.tolist(), "w0": w0.tolist(),
           "b0": b0.tolist(), "batch": 4, "lr": 0.1, "momentum": 0.9}

    def make(metrics=None):
        net = nn.Dense(4, 3)
        net.weight.set_data(Tensor(w0))
        net.bias.set_data(Tensor(b0))
        loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
        opt = nn.Momentum(net.trainable_params(), 0.1, 0.9)
        return net, opt, Model(net, loss, opt, metrics=metrics)

    class Src:
        def __init__(self, a, b): self.a, self.b = a, b
        def __len__(self): return len(self.a)
        def __getitem__(self, i): return np.array(self.a[i]), np.array(self.b[i], dtype=np.int32)

    def dset(a, b):
        # GeneratorDataset over ndarrays (NumpySlicesDataset breaks under NumPy 2 in MindSpore 2.10)
        return ds.GeneratorDataset(Src(a, b), ["x", "y"], shuffle=False).batch(4)

    def files(d):
        res = []
        for fn in sorted(os.listdir(d), key=lambda f: os.path.getmtime(os.path.join(d, f))):
            if not fn.endswith(".ckpt"):
                continue
            c = ms.load_checkpoint(os.path.join(d, fn))
            e = {"file": fn, "names": list(c.keys())}
            for k in ["epoch_num", "step_num"]:
                if k in c:
                    e[k] = int(c[k].asnumpy())
                    e[k + "_dtype"] = str(c[k].dtype)
            e["weight"] = f(c["weight"].asnumpy())
            e["bias"] = f(c["bias"].asnumpy())
            e["moments.weight"] = f(c["moments.weight"].asnumpy())
            e["global_step"] = int(c["global_step"].asnumpy()[0])
            res.append(e)
        return res

    # zoo_ckpt: the model zoo's resume form of append_info
    d = os.path.join(tmp, "zoo")
    net, opt, model = make()
    rec = Recorder()
    cfg = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=10,
                           append_info=[{"epoch_num": 3, "step_num": 9}])
    model.train(2, dset(x, y), callbacks=[ModelCheckpoint("zoo", d, cfg), rec], dataset_sink_mode=False)
    out["zoo_ckpt"] = {"files": files(d), "losses": [float(e["net_outputs"]) for e in []]}
    # resume: initial_epoch with the names form
    d = os.path.join(tmp, "resume")
    net, opt, model = make()
    losses = []
    rec = Recorder(lambda h, cb: {"loss": float(cb.net_outputs.asnumpy())} if h == "on_train_step_end" else {})
    cfg = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=10, append_info=["epoch_num", "step_num"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        model.train(3, dset(x, y), callbacks=[ModelCheckpoint("r", d, cfg), rec, LossMonitor(2)],
                    dataset_sink_mode=False, initial_epoch=1)
    out["resume"] = {"trace": rec.trace, "files": files(d),
                     "loss_monitor": [l for l in buf.getvalue().splitlines() if l.startswith("epoch:")]}
    # fit
    net, opt, model = make(metrics={"acc", "loss"})
    rec = Recorder()
    hist = History()
    model.fit(4, dset(x, y), dset(vx, vy), valid_frequency=2, callbacks=[rec, hist])
    out["fit"] = {"trace": rec.trace, "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
                  "history_epoch": hist.epoch["epoch"]}
    # eval with the set and dict forms
    r = model.eval(dset(vx, vy))
    out["fit"]["eval_after"] = {k: float(v) for k, v in r.items()}
    # plateau
    net, opt, model = make()
    rec = Recorder(lambda h, cb: lr_of(cb) if h == "on_train_epoch_end" else {})
    model.train(5, dset(x, y), callbacks=[ReduceLROnPlateau(monitor="loss", mode="max", patience=1, factor=0.5,
                                                            cooldown=1), rec])
    out["plateau"] = [e["lr"] for e in rec.trace if e["hook"] == "on_train_epoch_end"]
    # early stopping
    net, opt, model = make()
    rec = Recorder()
    es = EarlyStopping(monitor="loss", mode="max", patience=2)
    model.train(10, dset(x, y), callbacks=[es, rec])
    out["early"] = {"epochs_run": sum(1 for e in rec.trace if e["hook"] == "on_train_epoch_end"),
                    "stopped_epoch": es.stopped_epoch}
    # learning-rate scheduler
    net, opt, model = make()
    rec = Recorder(lambda h, cb: lr_of(cb) if h == "on_train_step_end" else {})

    def fn(lr, step):
        return lr * 0.5 if step % 2 == 0 else lr
    model.train(2, dset(x, y), callbacks=[LearningRateScheduler(fn), rec])
    out["lrsched"] = [e["lr"] for e in rec.trace if e["hook"] == "on_train_step_end"]
    out["lrsched_weight"] = f(net.weight.asnumpy())
    return out


def main():
    # Under NumPy 2, MindSpore 2.10's first Parameter * float raises (a numpy.core import
    # inside it fails once); later ones work. Take that first failure here, not in a callback.
    try:
        ms.Parameter(Tensor(0.1, ms.float32), name="warm") * 0.5
    except SystemError:
        pass
    rng = np.random.default_rng(20261204)
    tmp = tempfile.mkdtemp()
    try:
        order, frozen = order_golden(tmp)
        res = {"mindspore": ms.__version__, "metrics": metrics_golden(rng), "order": order, "order_frozen": frozen,
               "train": train_golden(rng, tmp)}
    finally:
        shutil.rmtree(tmp)
    with open(OUT, "w") as fh:
        json.dump(res, fh, indent=None, separators=(",", ":"))
        fh.write("\n")
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
