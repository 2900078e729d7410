#!/usr/bin/env python3
"""frozen_peers.py — the peers' side of scripts/bench/frozen_spore.lua: ResNet50 (1001
classes, new 10-class head), batch B, 224x224, Momentum(0.01, 0.9), forward alone (train
mode), a transfer step with only the head trainable, a full training step. Median of RUNS
after a warm-up, ms. 2 threads.

  /work/venv/bin/python scripts/bench/frozen_peers.py torch [runs] [batch]
  /work/venv/bin/python scripts/bench/frozen_peers.py mindspore [runs] [batch]   (Graph mode)
"""
import statistics, sys, time
import numpy as np

peer = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
B = int(sys.argv[3]) if len(sys.argv) > 3 else 8


def timed(f):
    f()
    s = []
    for _ in range(RUNS):
        t0 = time.perf_counter(); f(); s.append((time.perf_counter() - t0) * 1000)
    return statistics.median(s)


def report(fwd, frozen, full, tag):
    print("%s\tforward_train %.1f ms\tfrozen_step %.1f ms\tfull_step %.1f ms\tfrozen/forward %.2f\tfrozen/full %.2f"
          % (tag, fwd, frozen, full, frozen / fwd, frozen / full), flush=True)


if peer == "torch":
    import torch, torchvision
    torch.set_num_threads(2)
    net = torchvision.models.resnet50(num_classes=1001)
    net.fc = torch.nn.Linear(2048, 10)
    net.train()
    x, y = torch.randn(B, 3, 224, 224), torch.arange(B) * 97 % 10  # as util.lua labels()
    lossf = torch.nn.CrossEntropyLoss()

    def stepper():
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
        def step():
            opt.zero_grad(); lossf(net(x), y).backward(); opt.step()
        return step
    with torch.no_grad():
        fwd = timed(lambda: net(x))
    for n, p in net.named_parameters():
        p.requires_grad = n.startswith("fc.")
    frozen = timed(stepper())
    for p in net.parameters():
        p.requires_grad = True
    full = timed(stepper())
    report(fwd, frozen, full, "torch %s" % torch.__version__)
    sys.exit(0)

import mindspore as ms
from mindspore import nn, ops, Tensor


def conv(cin, cout, k, s=1):
    return nn.Conv2d(cin, cout, k, stride=s, pad_mode="same", weight_init="HeNormal")


class Block(nn.Cell):
    def __init__(self, cin, cout, stride):
        super().__init__()
        ch = cout // 4
        self.conv1, self.bn1 = conv(cin, ch, 1), nn.BatchNorm2d(ch, eps=1e-4, momentum=0.9)
        self.conv2, self.bn2 = conv(ch, ch, 3, stride), nn.BatchNorm2d(ch, eps=1e-4, momentum=0.9)
        self.conv3, self.bn3 = conv(ch, cout, 1), nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)
        self.relu = nn.ReLU()
        self.down = stride != 1 or cin != cout
        if self.down:
            self.down_sample_layer = nn.SequentialCell([conv(cin, cout, 1, stride), nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)])

    def construct(self, x):
        o = self.relu(self.bn1(self.conv1(x)))
        o = self.relu(self.bn2(self.conv2(o)))
        o = self.bn3(self.conv3(o))
        i = self.down_sample_layer(x) if self.down else x
        return self.relu(o + i)


class ResNet50(nn.Cell):
    """The model zoo's ResNet50 layout (bottleneck, convs 'same', BN eps 1e-4)."""
    def __init__(self, nc):
        super().__init__()
        self.conv1, self.bn1 = conv(3, 64, 7, 2), nn.BatchNorm2d(64, eps=1e-4, momentum=0.9)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, pad_mode="same")
        layers = []
        for n, cin, cout, s in ((3, 64, 256, 1), (4, 256, 512, 2), (6, 512, 1024, 2), (3, 1024, 2048, 2)):
            layers.append(nn.SequentialCell([Block(cin if j == 0 else cout, cout, s if j == 0 else 1) for j in range(n)]))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.mean = ops.ReduceMean(keep_dims=False)
        self.end_point = nn.Dense(2048, nc)

    def construct(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.end_point(self.mean(x, (2, 3)))


ms.set_context(device_target="CPU")
x, y = Tensor(np.random.randn(B, 3, 224, 224).astype(np.float32)), Tensor((np.arange(B) * 97 % 10).astype(np.int32))
# Graph mode (PyNative fails in this venv: MindSpore's PyNative parser is built against NumPy 1.x)
for mode, tag in ((ms.GRAPH_MODE, "Graph"),):
    ms.set_context(mode=mode)
    net = ResNet50(1001)
    net.end_point = nn.Dense(2048, 10)
    net.set_train(True)
    lossf = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    fwd = timed(lambda: net(x).asnumpy())

    def stepper():
        opt = nn.Momentum(net.trainable_params(), 0.01, 0.9)
        tn = nn.TrainOneStepCell(nn.WithLossCell(net, lossf), opt)
        tn.set_train(True)
        return lambda: tn(x, y).asnumpy()
    for p in net.get_parameters():
        if not p.name.startswith("end_point."):
            p.requires_grad = False
    frozen = timed(stepper())
    for p in net.get_parameters():
        if "moving_" not in p.name:
            p.requires_grad = True
    full = timed(stepper())
    report(fwd, frozen, full, "mindspore %s %s" % (ms.__version__, tag))
