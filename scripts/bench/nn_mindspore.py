"""scripts/bench/nn_mindspore.py — MindSpore's side of bench_nn.sh (the same work as
nn_spore.lua). Usage: python nn_mindspore.py MODE RUNS [WORKLOADS], MODE graph or
pynative (bench_nn.sh runs both and keeps the faster per figure). Prints "name<TAB>median"
lines. Warm-up calls (which include Graph mode's compilation for each shape) are not
timed. Exits 1 when mindspore cannot be imported (run.sh names the peer)."""
import statistics
import sys
import time

import numpy as np
import mindspore as ms
from mindspore import nn, Tensor

MODE = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ONLY = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else None
ms.set_context(mode=ms.GRAPH_MODE if MODE == "graph" else ms.PYNATIVE_MODE)
ms.set_device("CPU")
# 2 op threads, as the other peers (MindSpore's default is one per core, also 2 here)
ms.device_context.cpu.op_tuning.threads_num(2)
ms.set_seed(1)
np.random.seed(1)


def want(prefix):
    return ONLY is None or any(prefix.startswith(o) or o.startswith(prefix) for o in ONLY)


def out(name, value):
    print("%s\t%.6g" % (name, value), flush=True)


def samples(fn, runs=RUNS, warm=2):
    for _ in range(warm):
        fn()
    s = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        s.append(time.perf_counter() - t0)
    return statistics.median(s)


def sync(t):
    return t.asnumpy() if isinstance(t, Tensor) else t


class LeNet5(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1, self.fc2, self.fc3 = nn.Dense(400, 120), nn.Dense(120, 84), nn.Dense(84, 10)
        self.relu, self.pool, self.flatten = nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten()

    def construct(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.flatten(x)
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


def conv(cin, cout, k, s=1):
    return nn.Conv2d(cin, cout, k, s, pad_mode="pad" if k > 1 else "valid", padding=k // 2 if k > 1 else 0)


class Bottleneck(nn.Cell):
    def __init__(self, cin, cout, stride):
        super().__init__()
        ch = cout // 4
        self.conv1, self.bn1 = conv(cin, ch, 1), nn.BatchNorm2d(ch, eps=1e-4, momentum=0.9)
        self.conv2, self.bn2 = conv(ch, ch, 3, stride), nn.BatchNorm2d(ch, eps=1e-4, momentum=0.9)
        self.conv3, self.bn3 = conv(ch, cout, 1), nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)
        self.relu = nn.ReLU()
        self.down = stride != 1 or cin != cout
        if self.down:
            self.down_sample = nn.SequentialCell([conv(cin, cout, 1, stride),
                                                  nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)])

    def construct(self, x):
        o = self.relu(self.bn1(self.conv1(x)))
        o = self.relu(self.bn2(self.conv2(o)))
        o = self.bn3(self.conv3(o))
        if self.down:
            x = self.down_sample(x)
        return self.relu(o + x)


class ResNet50(nn.Cell):
    def __init__(self, num_classes=1001):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, pad_mode="pad", padding=3)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-4, momentum=0.9)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, pad_mode="same")
        layers, cin = [], 64
        for n, cout, s in ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2)):
            for i in range(n):
                layers.append(Bottleneck(cin, cout, s if i == 0 else 1))
                cin = cout
        self.layers = nn.SequentialCell(layers)
        self.mean = ms.ops.ReduceMean(keep_dims=False)
        self.fc = nn.Dense(2048, num_classes)

    def construct(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        return self.fc(self.mean(x, (2, 3)))


def rand(*shape):
    return Tensor(np.random.randn(*shape).astype(np.float32))


def train_step(net, b, shape, classes):
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Momentum(net.trainable_params(), 0.01, 0.9)
    step = nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)
    step.set_train(True)
    x, y = rand(b, *shape), Tensor((np.arange(b) * 97 % classes).astype(np.int32))  # as util.lua labels()
    return lambda: sync(step(x, y))


for b, iters in ((1, 300), (64, 20), (256, 6)):
    name = "lenet5_inference_b%d" % b
    if not want(name):
        continue
    net = LeNet5()
    net.set_train(False)
    x = rand(b, 1, 32, 32)

    def run():
        for _ in range(iters):
            r = net(x)
        sync(r)
    out(name, iters * b / samples(run))

if want("lenet5_train_b32"):
    f = train_step(LeNet5(), 32, (1, 32, 32), 10)

    def run():
        for _ in range(30):
            f()
    out("lenet5_train_b32", 30 * 32 / samples(run))

if want("resnet50"):
    net = ResNet50()
    net.set_train(False)
    curve = {}
    for b in (1, 2, 4, 8, 16, 32):
        if not (want("resnet50_forward_b%d" % b) or want("resnet50_ms_per_image_b%d" % b)):
            continue
        x = rand(b, 3, 224, 224)
        curve[b] = samples(lambda: sync(net(x)), warm=1) * 1000
        if b in (1, 8, 32):
            out("resnet50_forward_b%d" % b, curve[b])
    for b, v in curve.items():
        out("resnet50_ms_per_image_b%d" % b, v / b)
    for b in (8, 32):
        name = "resnet50_train_b%d" % b
        if want(name):
            out(name, samples(train_step(net, b, (3, 224, 224), 1001), warm=1) * 1000)
