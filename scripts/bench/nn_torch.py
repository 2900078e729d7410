"""scripts/bench/nn_torch.py — PyTorch's side of bench_nn.sh (the same work as nn_spore.lua).
Usage: python nn_torch.py RUNS [WORKLOADS]. Prints "name<TAB>median" lines (and, for
ResNet50, "name.format<TAB>channels_last|contiguous": the faster memory format, probed on
batch 8 after a warm-up, is the one measured). Runs with 2 threads; the caller sets
OPENBLAS_NUM_THREADS=1. Exits 1 when torch cannot be imported (run.sh names the peer)."""
import statistics
import sys
import time

import torch
import torch.nn as nn

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ONLY = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else None
torch.set_num_threads(2)
torch.manual_seed(1)


def labels(b, classes):
    # (i * 97) mod classes, as util.lua labels(): all-zero labels let the net fit the batch in
    # two steps and the gradients then go subnormal (20-100 s steps)
    return torch.arange(b) * 97 % classes


def want(prefix):
    return ONLY is None or any(prefix.startswith(o) or o.startswith(prefix) for o in ONLY)


def out(name, value):
    print("%s\t%s" % (name, value if isinstance(value, str) else "%.6g" % value), flush=True)


def samples(fn, runs=RUNS, warm=2):
    for _ in range(warm):
        fn()
    s = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        s.append(time.perf_counter() - t0)
    return statistics.median(s)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, bias=False)
        self.conv2 = nn.Conv2d(6, 16, 5, bias=False)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        self.pool, self.relu = nn.MaxPool2d(2, 2), nn.ReLU()

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        ch = cout // 4
        self.conv1, self.bn1 = nn.Conv2d(cin, ch, 1, bias=False), nn.BatchNorm2d(ch, eps=1e-4)
        self.conv2, self.bn2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False), nn.BatchNorm2d(ch, eps=1e-4)
        self.conv3, self.bn3 = nn.Conv2d(ch, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-4)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-4))

    def forward(self, x):
        o = self.relu(self.bn1(self.conv1(x)))
        o = self.relu(self.bn2(self.conv2(o)))
        o = self.bn3(self.conv3(o))
        return self.relu(o + (self.down(x) if self.down is not None else x))


class ResNet50(nn.Module):
    def __init__(self, num_classes=1001):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64, eps=1e-4)
        self.pool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for n, cout, s in ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2)):
            for i in range(n):
                layers.append(Bottleneck(cin, cout, s if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        return self.fc(x.mean((2, 3)))


# ---- LeNet5 ----
for b, iters in ((1, 2000), (64, 50), (256, 15)):
    name = "lenet5_inference_b%d" % b
    if not want(name):
        continue
    with torch.no_grad():
        net = LeNet5().eval()
        x = torch.randn(b, 1, 32, 32)

        def run():
            for _ in range(iters):
                net(x)
        out(name, iters * b / samples(run))

if want("lenet5_train_b32"):
    net = LeNet5().train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    x, y = torch.randn(32, 1, 32, 32), labels(32, 10)

    def run():
        for _ in range(100):
            opt.zero_grad()
            lossf(net(x), y).backward()
            opt.step()
    out("lenet5_train_b32", 100 * 32 / samples(run))

# ---- ResNet50: forward (eval) and a training step, in the faster memory format ----
if want("resnet50"):
    net = ResNet50()
    fmt = torch.contiguous_format
    with torch.no_grad():
        net.eval()
        x = torch.randn(8, 3, 224, 224)
        t = {}
        for f in (torch.contiguous_format, torch.channels_last):
            net = net.to(memory_format=f)
            xf = x.contiguous(memory_format=f)
            t[f] = samples(lambda: net(xf), runs=2, warm=1)
        fmt = min(t, key=t.get)
    net = net.to(memory_format=fmt)
    fname = "channels_last" if fmt == torch.channels_last else "contiguous"
    curve = {}
    with torch.no_grad():
        net.eval()
        for b in (1, 2, 4, 8, 16, 32):
            if not (want("resnet50_forward_b%d" % b) or want("resnet50_ms_per_image_b%d" % b)):
                continue
            x = torch.randn(b, 3, 224, 224).contiguous(memory_format=fmt)
            ms = samples(lambda: net(x), warm=1) * 1000
            curve[b] = ms
            if b in (1, 8, 32):
                out("resnet50_forward_b%d" % b, ms)
                out("resnet50_forward_b%d.format" % b, fname)
    for b, ms in curve.items():
        out("resnet50_ms_per_image_b%d" % b, ms / b)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    for b in (8, 32):
        name = "resnet50_train_b%d" % b
        if not want(name):
            continue
        x = torch.randn(b, 3, 224, 224).contiguous(memory_format=fmt)
        y = labels(b, 1001)

        def step():
            opt.zero_grad()
            lossf(net(x), y).backward()
            opt.step()
        out(name, samples(step, warm=1) * 1000)
        out(name + ".format", fname)
