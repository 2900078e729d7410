"""scripts/bench/nn_torch.py — PyTorch's side of bench_nn.sh (same work as nn_spore.lua).
Prints "name<TAB>median" lines, or nothing when torch cannot be imported."""
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
except Exception as e:  # noqa: BLE001
    print("torch unavailable: %s" % e, file=sys.stderr)
    sys.exit(0)

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.set_num_threads(2)
torch.manual_seed(1)


def out(name, samples):
    print("%s\t%.6g" % (name, statistics.median(samples)), flush=True)


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


with torch.no_grad():
    net = LeNet5().eval()
    x = torch.randn(64, 1, 32, 32)
    for _ in range(5):
        net(x)
    s = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        for _ in range(50):
            net(x)
        s.append(50 * 64 / (time.perf_counter() - t0))
    out("lenet5_inference_b64", s)

net = LeNet5().train()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
lossf = nn.CrossEntropyLoss()
x, y = torch.randn(32, 1, 32, 32), torch.zeros(32, dtype=torch.long)


def step():
    opt.zero_grad()
    lossf(net(x), y).backward()
    opt.step()


for _ in range(5):
    step()
s = []
for _ in range(RUNS):
    t0 = time.perf_counter()
    for _ in range(100):
        step()
    s.append(100 * 32 / (time.perf_counter() - t0))
out("lenet5_train_b32", s)

with torch.no_grad():
    for b in (1, 8):
        net = ResNet50().eval()
        x = torch.randn(b, 3, 224, 224)
        net(x)
        s = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            net(x)
            s.append((time.perf_counter() - t0) * 1000)
        out("resnet50_forward_b%d" % b, s)
