#!/usr/bin/env python3
"""gen_resnet_names.py — an independent oracle for spore's ResNet parameter names, shapes
and order: MindSpore itself builds the model zoo's resnet18(10), resnet34(10) and
resnet50(1001) and this script records, per network,

  params: the ordered [name, shape, requires_grad] of net.parameters_and_names()
  bn:     {cell name: [eps, momentum]} of every nn.BatchNorm2d; momentum is the constructor
          argument (moving = momentum*moving + (1-momentum)*batch), i.e. 1 - cell.momentum,
          since MindSpore stores the complement on the cell; rounded to 12 digits
  conv:   {cell name: [pad_mode, [top, bottom, left, right], [stride_h, stride_w]]} of every
          nn.Conv2d (an int padding is expanded to four sides)

as compact JSON (spec/fixtures/ms_resnet_names.json, read by spec/models_zoo_names_spec.lua).

The zoo definition is NOT part of this repository. Get `official/cv/ResNet/src/resnet.py`
of https://github.com/mindspore-ai/models (fixture made from commit
e60768e9c89095fdfd7bdef9922ee730fdbc4b7e, 22424 bytes) and lay it out as

  ZOO/src/__init__.py                  (empty)
  ZOO/src/resnet.py                    (the zoo file, unchanged)
  ZOO/src/model_utils/__init__.py      (empty)
  ZOO/src/model_utils/config.py        config = SimpleNamespace(net_name="resnet50",
                                                                optimizer="Momentum")

(the stub stands for the zoo's YAML config; with net_name "resnet50" and optimizer
"Momentum" neither the resnet152 nor the Thor branch is taken). Needs MindSpore (2.10.0 was
used) plus numpy and scipy. Run:

  /tmp/oracle-venv/bin/python scripts/gen/gen_resnet_names.py --zoo /tmp/zoo \
      --out spec/fixtures/ms_resnet_names.json
"""
import argparse
import hashlib
import json
import os
import platform
import sys

NETS = [("resnet18", 10), ("resnet34", 10), ("resnet50", 1001)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", required=True, help="directory holding src/resnet.py (the zoo layout)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                  "spec", "fixtures", "ms_resnet_names.json"))
    a = ap.parse_args()
    zoo_file = os.path.join(a.zoo, "src", "resnet.py")
    if not os.path.isfile(zoo_file):
        sys.exit("no %s: see this script's docstring for how to get the zoo file" % zoo_file)
    sys.path.insert(0, os.path.abspath(a.zoo))

    import numpy as np
    import scipy
    import mindspore
    import mindspore.nn as nn
    from src import resnet  # the zoo's definition

    np.random.seed(0)
    with open(zoo_file, "rb") as f:
        zoo_bytes = f.read()
    out = {
        "source": "mindspore-ai/models official/cv/ResNet/src/resnet.py",
        "source_sha256": hashlib.sha256(zoo_bytes).hexdigest(),
        "config": {"net_name": "resnet50", "optimizer": "Momentum"},
        "versions": {"mindspore": mindspore.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "python": platform.python_version()},
        "nets": {},
    }
    for name, class_num in NETS:
        net = getattr(resnet, name)(class_num)
        params = [[n, [int(d) for d in p.shape], bool(p.requires_grad)] for n, p in net.parameters_and_names()]
        bn, conv = {}, {}
        for cname, cell in net.cells_and_names():
            if isinstance(cell, nn.BatchNorm2d):
                bn[cname] = [float(cell.eps), round(1.0 - float(cell.momentum), 12)]
            elif isinstance(cell, nn.Conv2d):
                pad = cell.padding
                pad = [pad] * 4 if isinstance(pad, int) else list(pad)
                stride = cell.stride
                stride = [stride, stride] if isinstance(stride, int) else list(stride)[-2:]
                conv[cname] = [cell.pad_mode, [int(x) for x in pad], [int(x) for x in stride]]
        out["nets"][name] = {"class_num": class_num, "params": params, "bn": bn, "conv": conv}
        print("%s(%d): %d parameters (%d trainable), %d BatchNorm2d, %d Conv2d" % (
            name, class_num, len(params), sum(1 for p in params if p[2]), len(bn), len(conv)))
    text = json.dumps(out, separators=(",", ":"), sort_keys=False)
    with open(a.out, "w") as f:
        f.write(text + "\n")
    print("wrote %s (%d bytes)" % (a.out, len(text) + 1))


if __name__ == "__main__":
    main()
