"""scripts/gpu_torch.py — PyTorch's side of scripts/gpu_check.sh: ResNet50 (1001 classes,
224x224, the same bottleneck layout as spore.models.resnet50) forward and training
throughput on cuda:0, in float32 and in mixed precision ("O2": autocast float16 with a
GradScaler, float32 master weights). The same work as scripts/gpu_check.lua: forward in eval
mode, training steps of SGD momentum 0.9 with the loss read back every step. PyTorch's
defaults otherwise (cuDNN heuristics, TF32 allowed in cuDNN convolutions, not in matmul).
Prints one JSON line per (batch, amp), or {"error": ...} when torch or CUDA is missing.
Usage: python3 scripts/gpu_torch.py 32 128"""
import json
import os
import sys
import time

DEVICE = os.environ.get("GPU_TORCH_DEVICE", "cuda:0")  # "cpu": check this script without a GPU

try:
    import torch
    import torch.nn as nn
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
except Exception as e:  # noqa: BLE001
    print(json.dumps({"error": "torch unavailable: %s" % e}), flush=True)
    sys.exit(0)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, mid, stride):
        super().__init__()
        cout = mid * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


class ResNet50(nn.Module):
    def __init__(self, classes=1001):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for mid, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(n):
                layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
                cin = mid * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def run(batch, amp):
    torch.manual_seed(1)
    dev = torch.device(DEVICE)
    net = ResNet50().to(dev)
    x = torch.randn(batch, 3, 224, 224, device=dev)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    res = {"batch": batch, "amp": amp}
    use_amp = amp == "O2"
    net.eval()
    with torch.no_grad():
        def fwd():
            with torch.autocast(dev.type, dtype=torch.float16 if dev.type == "cuda" else torch.bfloat16, enabled=use_amp):
                return float(net(x).float().sum())
        fwd()
        iters = 5 if batch >= 128 else 10
        t0 = time.perf_counter()
        for _ in range(iters):
            fwd()
        res["forward_images_per_s"] = iters * batch / (time.perf_counter() - t0)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_amp and dev.type == "cuda")
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        with torch.autocast(dev.type, dtype=torch.float16 if dev.type == "cuda" else torch.bfloat16, enabled=use_amp):
            loss = lossf(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss.item()
    for _ in range(2):
        step()
    steps = 6 if batch >= 128 else 12
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    res["train_images_per_s"] = steps * batch / (time.perf_counter() - t0)
    return res


for b in [int(a) for a in sys.argv[1:]] or [32, 128]:
    for amp in ("O0", "O2"):
        try:
            print(json.dumps(run(b, amp)), flush=True)
        except Exception as e:  # noqa: BLE001
            print(json.dumps({"batch": b, "amp": amp, "error": str(e).splitlines()[0]}), flush=True)
