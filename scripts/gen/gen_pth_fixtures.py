#!/usr/bin/env python3
"""gen_pth_fixtures.py — write the PyTorch .pth fixtures of spec/fixtures/pth/ with torch.save
(zip format, pickle protocol 2) plus a JSON sidecar (pth_fixtures.json) giving, per file and
per entry, name, dtype, shape and the SHA-256 of the contiguous little-endian bytes, and the
LeNet's logits on a fixed input. Run:  /usr/bin/python3 scripts/gen/gen_pth_fixtures.py
(torch 1.13; torch 2.x writes the same format)."""
import collections, hashlib, json, os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "spec", "fixtures", "pth")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
side = {"torch": torch.__version__, "files": {}}

def sha(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        b = t.view(torch.int16).numpy().astype("<i2").tobytes()
    else:
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
    return hashlib.sha256(b).hexdigest()

def describe(prefix, obj, out):
    for k, v in obj.items():
        name = prefix + k
        if isinstance(v, torch.Tensor):
            out.append({"name": name, "dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                        "sha256": sha(v)})
        elif isinstance(v, dict):
            describe(name + ".", v, out)
        elif isinstance(v, bool):
            out.append({"name": name, "dtype": "bool", "shape": [], "value": v})
        elif isinstance(v, int):
            out.append({"name": name, "dtype": "int64", "shape": [], "value": v})
        elif isinstance(v, float):
            out.append({"name": name, "dtype": "float64", "shape": [], "value": v})
        else:
            out.append({"name": name, "skipped": type(v).__name__})

def save(fname, obj):
    path = os.path.join(OUT, fname)
    torch.save(obj, path)
    ents = []
    describe("", obj, ents)
    side["files"][fname] = ents

class Tiny(nn.Module):  # conv + bn + linear, torch names
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

tiny = Tiny()
with torch.no_grad():
    tiny.bn.running_mean.uniform_(-1, 1); tiny.bn.running_var.uniform_(0.5, 2)
    tiny.bn.weight.uniform_(0.5, 1.5); tiny.bn.bias.uniform_(-0.5, 0.5)
    tiny.bn.num_batches_tracked.fill_(7)
save("tiny_net.pth", tiny.state_dict())

# conv + bn as an nn.Sequential: names 0.weight, 1.running_mean... (spore's Sequential names)
seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
with torch.no_grad():
    seq[1].running_mean.uniform_(-1, 1); seq[1].running_var.uniform_(0.5, 2)
    seq[1].weight.uniform_(0.5, 1.5); seq[1].bias.uniform_(-0.5, 0.5)
save("seq_bn.pth", seq.state_dict())

g = torch.Generator().manual_seed(1)
base = torch.randn(3, 4, generator=g)
dt = collections.OrderedDict()
dt["f32"] = base.clone()
dt["f64"] = base.double()
dt["f16"] = base.half()
dt["bf16"] = base.bfloat16()
dt["i8"] = torch.arange(-6, 6, dtype=torch.int8).reshape(3, 4)
dt["i16"] = torch.arange(-600, 600, 100, dtype=torch.int16)
dt["i32"] = torch.arange(-6, 6, dtype=torch.int32) * 100000
dt["i64"] = torch.arange(-6, 6, dtype=torch.int64) * (1 << 40)
dt["u8"] = torch.arange(0, 240, 20, dtype=torch.uint8)
dt["bool"] = torch.tensor([True, False, True, True])
dt["scalar"] = torch.tensor(2.5)
dt["empty"] = torch.zeros(0, 3)
save("dtypes.pth", dt)

m = torch.arange(24, dtype=torch.float32).reshape(4, 6)
views = collections.OrderedDict()
views["m"] = m
views["cols"] = m[:, 1:3]          # offset 1, strides (6, 1)
views["t"] = m.t()                 # strides (1, 6)
views["row"] = m[2]                # offset 12
views["step"] = m[1:, ::2]         # offset 6, strides (6, 2)
views["expand"] = torch.arange(3.0).reshape(3, 1).expand(3, 4)  # stride 0
save("views.pth", views)

save("wrapper.pth", {"state_dict": tiny.state_dict(), "epoch": 3, "lr": 0.125, "name": "tiny",
                     "milestones": [10, 20], "best": None})

class LeNet(nn.Module):  # spore.models.lenet5 with torch names
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, bias=False)
        self.conv2 = nn.Conv2d(6, 16, 5, bias=False)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

lenet = LeNet().eval()
# float32 LeNet weights are 247 KB; the fixture stores them as float16 (fixtures stay < 200 KB)
# and the logits are computed in float32 from those rounded weights (spore casts on load).
with torch.no_grad():
    for p in lenet.parameters():
        p.copy_(p.half().float())
save("lenet.pth", collections.OrderedDict((k, v.half()) for k, v in lenet.state_dict().items()))
x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    y = lenet(x)
save("lenet_io.pth", {"input": x, "logits": y})
side["lenet_logits"] = [[float(v) for v in row] for row in y]

with open(os.path.join(OUT, "pth_fixtures.json"), "w") as f:
    json.dump(side, f, indent=1, sort_keys=True)
tot = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
print("wrote", OUT, tot, "bytes")
