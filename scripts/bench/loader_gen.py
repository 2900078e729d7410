"""scripts/bench/loader_gen.py DIR [N=300] — N ImageNet-sized (500x375) JPEGs, quality 90,
photo-like content (smooth fields, edges and sensor noise; ~60-110 KB each, as ImageNet
photos), for bench_loader.sh. Idempotent: files already present are kept."""
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
os.makedirs(out, exist_ok=True)
rs = np.random.RandomState(500375)
y, x = np.mgrid[0:375, 0:500].astype(np.float32)
for i in range(n):
    p = os.path.join(out, "img_%04d.jpg" % i)
    if os.path.exists(p):
        continue
    f = rs.uniform(3, 40, size=(3, 2))
    ph = rs.uniform(0, 6.3, size=(3, 2))
    img = np.empty((375, 500, 3), np.float32)
    for c in range(3):
        img[..., c] = 128 + 60 * np.sin(x / f[c, 0] + ph[c, 0]) * np.cos(y / f[c, 1] + ph[c, 1])
    cx, cy, r = rs.uniform(100, 400), rs.uniform(80, 300), rs.uniform(40, 150)
    img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] += rs.uniform(-80, 80, size=3)
    img += rs.normal(0, 9, size=img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p, quality=90)
