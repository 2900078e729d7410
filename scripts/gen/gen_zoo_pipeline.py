#!/usr/bin/env python3
"""Goldens for spore.data's transforms and the model zoo ResNet pipelines, recorded by
MindSpore itself (mindspore.dataset, the same ops the zoo's create_dataset functions use).

Run from the repository root (mindspore 2.10.0, numpy, pillow):

    /work/venv/bin/python scripts/gen/gen_zoo_pipeline.py          # writes spec/fixtures/zoo/

It writes:
  * the input images (synthetic, seeded; PIL encodes them once: a.jpg 500x375 baseline
    RGB, p.jpg 160x120 progressive RGB, b.png 97x131 RGB, g.jpg 64x48 grayscale) and a tiny
    CIFAR-10 binary release (cifar/: data_batch_1..5.bin with 5 records each (MindSpore reads
    blocks of 5), test_batch.bin with 10, batches.meta.txt);
  * deterministic chains, MindSpore's outputs as .npy:
      a_eval224_u8.npy      Decode, Resize(256), CenterCrop(224) of a.jpg (uint8 HWC) — the
                            zoo imagenet eval chain before Normalize (its float output is
                            602 KB; spore normalises this golden's input and output alike)
      {b,g,p}_eval64.npy    the full imagenet eval chain with Resize(73), CenterCrop(64),
                            Normalize(zoo mean/std), HWC2CHW (float32 CHW)
      cifar_eval28.npy      test_batch.bin's records (read as Cifar10Dataset does) + the zoo cifar10
                            eval chain at image_size 28 (float32 [10,3,28,28])
      pad_{mode}.npy        RandomCrop with the padded size (so the offset is fixed) for each
                            padding mode and form, on g.jpg resized to 12x10 (uint8)
      center_big.npy        CenterCrop(20, 16) of a 12x10 image (zero-padded by MindSpore)
      resize_short.npy      Resize(7) of b.png (shorter side; uint8)
  * statistics of the random chains (mean image over many draws, MindSpore's seeds):
      a_train32_mean.npy    imagenet train chain at image_size 32 on a.jpg, mean of 1000 draws
      cifar_train_mean.npy  cifar10 train chain at image_size 32 on test record 0: the exact
                            mean over its 162 equally likely (offset, flip) cases, each through
                            MindSpore's ops (its draws' histogram goes in the manifest)
    spore draws its own numbers: the specs compare means within a tolerance set by the
    per-pixel spread (also recorded: *_std.npy).
  * manifest.json: shapes, sources, versions.
"""
import argparse
import json
import os
import struct

import numpy as np
from PIL import Image

import mindspore
import mindspore.dataset as ds
import mindspore.dataset.vision as V
from mindspore.dataset.vision import Border

MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]
CMEAN = [0.4914, 0.4822, 0.4465]
CSTD = [0.2023, 0.1994, 0.2010]


def synth(h, w, seed, gray=False):
    """A smooth photo-like image: gradients, discs and a little noise (seeded)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, f = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 60 * np.sin(a * x / 17 + b * y / 23 + f * 3) + 30 * np.cos((x + y) / (11 + 5 * c))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, min(h, w) / 3)
        col = rng.uniform(0, 255, 3)
        m = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        img[m] = 0.6 * img[m] + 0.4 * col
    img += rng.normal(0, 6, img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if gray:
        img = img[..., 1]
    return img


def decode(path):
    return V.Decode()(np.fromfile(path, np.uint8))


def write_cifar(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(10)

    def records(n, seed):
        out = b""
        for i in range(n):
            img = synth(32, 32, seed + i)  # HWC
            out += bytes([int(rng.integers(0, 10))]) + img.transpose(2, 0, 1).tobytes()
        return out

    for k in range(1, 6):
        with open(os.path.join(d, "data_batch_%d.bin" % k), "wb") as f:
            f.write(records(5, 100 * k))
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(records(10, 900))
    with open(os.path.join(d, "batches.meta.txt"), "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                           "truck"]) + "\n")


def read_cifar(path):
    raw = np.fromfile(path, np.uint8).reshape(-1, 3073)
    return [(r[1:].reshape(3, 32, 32).transpose(1, 2, 0).copy(), int(r[0])) for r in raw]


def draw(img, chain, n):
    """n draws of a random chain on one image, through a dataset pipeline (MindSpore's eager
    calls with a fixed seed repeat one draw)."""
    d = ds.NumpySlicesDataset({"image": np.stack([img] * n)}, shuffle=False)
    d = d.map(operations=chain.transforms, input_columns="image")
    out = np.stack([r[0] for r in d.create_tuple_iterator(output_numpy=True)]).astype(np.float64)
    assert out.std(0).max() > 0, "the draws did not vary"
    return out


def run_chain(img, ops):
    for op in ops:
        img = op(img)
    return img


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="spec/fixtures/zoo")
    ap.add_argument("--draws", type=int, default=1000)
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    man = {"mindspore": mindspore.__version__, "numpy": np.__version__, "files": {}}

    def save(name, arr, what):
        np.save(os.path.join(out, name), arr)
        man["files"][name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "what": what}

    # input images
    Image.fromarray(synth(375, 500, 1)).save(os.path.join(out, "a.jpg"), quality=90)
    Image.fromarray(synth(120, 160, 2)).save(os.path.join(out, "p.jpg"), quality=85, progressive=True)
    Image.fromarray(synth(131, 97, 3)).save(os.path.join(out, "b.png"))
    Image.fromarray(synth(48, 64, 4, gray=True)).save(os.path.join(out, "g.jpg"), quality=90)
    write_cifar(os.path.join(out, "cifar"))

    # deterministic chains
    a_img = decode(os.path.join(out, "a.jpg"))
    save("a_eval224_u8.npy", run_chain(a_img, [V.Resize(256), V.CenterCrop(224)]),
         "a.jpg: Decode, Resize(256), CenterCrop(224) (uint8 HWC)")
    for n in ["b.png", "g.jpg", "p.jpg"]:
        img = decode(os.path.join(out, n))
        save(n[0] + "_eval64.npy",
             run_chain(img, [V.Resize(73), V.CenterCrop(64), V.Normalize(MEAN, STD), V.HWC2CHW()]).astype(np.float32),
             n + ": Decode, Resize(73), CenterCrop(64), Normalize(zoo), HWC2CHW")
    # MindSpore's Cifar10Dataset insists on 10,000 records a file: the records are read here
    # as it decodes them (label byte, then CHW planes → HWC) and its ops run on each image
    recs = read_cifar(os.path.join(out, "cifar", "test_batch.bin"))
    cchain = [V.Resize((28, 28)), V.Rescale(1.0 / 255.0, 0.0), V.Normalize(CMEAN, CSTD), V.HWC2CHW()]
    save("cifar_eval28.npy", np.stack([run_chain(im, cchain) for im, _ in recs]).astype(np.float32),
         "cifar/test_batch.bin, zoo cifar10 eval chain at 28")
    man["cifar_test_labels"] = [lab for _, lab in recs]

    small = run_chain(decode(os.path.join(out, "g.jpg")), [V.Resize((12, 10))])
    save("small_12x10.npy", small, "g.jpg: Decode, Resize((12, 10)) (uint8 HWC, 3 channels)")
    for tag, pad, mode, fill in [("constant", (1, 2, 3, 4), Border.CONSTANT, (10, 20, 30)),
                                 ("edge", 3, Border.EDGE, 0),
                                 ("reflect", (2, 3), Border.REFLECT, 0),
                                 ("symmetric", (3, 1, 2, 4), Border.SYMMETRIC, 0)]:
        p = (pad, pad, pad, pad) if isinstance(pad, int) else (pad * 2 if len(pad) == 2 else pad)
        l, t, r, b = p
        op = V.RandomCrop((12 + t + b, 10 + l + r), padding=pad, fill_value=fill, padding_mode=mode)
        save("pad_%s.npy" % tag, op(small), "RandomCrop to the padded size, padding %s, %s" % (pad, tag))
        man["files"]["pad_%s.npy" % tag]["padding"] = pad if isinstance(pad, int) else list(pad)
        man["files"]["pad_%s.npy" % tag]["fill"] = fill if isinstance(fill, int) else list(fill)
    save("pad_if_needed.npy", V.RandomCrop((15, 13), pad_if_needed=True)(small),
         "RandomCrop((15, 13), pad_if_needed=True) of the 12x10 image")
    save("center_big.npy", V.CenterCrop((20, 16))(small), "CenterCrop((20, 16)) of the 12x10 image")
    save("center_odd.npy", V.CenterCrop((5, 7))(small), "CenterCrop((5, 7)) of the 12x10 image")
    save("resize_short.npy", V.Resize(7)(decode(os.path.join(out, "b.png"))), "b.png: Resize(7) (shorter side)")

    # random chains: statistics over draws
    ds.config.set_seed(1234)
    chain = ds.transforms.Compose([V.RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(0.75, 1.333)),
                                   V.RandomHorizontalFlip(0.5), V.Normalize(MEAN, STD), V.HWC2CHW()])
    draws = draw(a_img, chain, a.draws)
    save("a_train32_mean.npy", draws.mean(0).astype(np.float32), "imagenet train chain at 32 on a.jpg: mean of draws")
    save("a_train32_std.npy", draws.std(0).astype(np.float32), "... and the per-pixel standard deviation")
    # cifar10 train chain: RandomCrop((32, 32), (4, 4, 4, 4)) draws its offset uniformly in
    # 0..8 on each axis and the flip with p = 0.5 (checked below on MindSpore's own draws), so
    # the mean image is an exact average over the 162 cases; MindSpore's chain on each case
    # gives it (a mean of sampled pipeline draws strays from it: its rows' draws are not
    # independent enough for a tight check)
    rec0 = recs[0][0]
    cases = []
    for y in range(9):
        for x in range(9):
            for f in (0, 1):
                crop = np.pad(rec0, ((4, 4), (4, 4), (0, 0)))[y:y + 32, x:x + 32]
                if f:
                    crop = crop[:, ::-1].copy()
                cases.append(run_chain(crop, [V.Resize((32, 32)), V.Rescale(1.0 / 255.0, 0.0),
                                              V.Normalize(CMEAN, CSTD), V.HWC2CHW()]).astype(np.float64))
    cases = np.stack(cases)
    save("cifar_train_mean.npy", cases.mean(0).astype(np.float32), "cifar10 train chain on test record 0: exact mean")
    save("cifar_train_std.npy", cases.std(0).astype(np.float32), "... and the per-pixel standard deviation")
    # MindSpore's offsets and flips are uniform: its own draws, matched back to (y, x, flip)
    d = ds.NumpySlicesDataset({"image": np.stack([rec0] * a.draws)}, shuffle=False)
    d = d.map(operations=[V.RandomCrop((32, 32), (4, 4, 4, 4)), V.RandomHorizontalFlip(0.5)], input_columns="image")
    padded = np.pad(rec0, ((4, 4), (4, 4), (0, 0)))
    hist = np.zeros((9, 9, 2), np.int64)
    for (o,) in d.create_tuple_iterator(output_numpy=True):
        for y in range(9):
            for x in range(9):
                w = padded[y:y + 32, x:x + 32]
                if (w == o).all():
                    hist[y, x, 0] += 1
                elif (w[:, ::-1] == o).all():
                    hist[y, x, 1] += 1
    man["mindspore_randomcrop_hist"] = {"y": hist.sum((1, 2)).tolist(), "x": hist.sum((0, 2)).tolist(),
                                        "flip": hist.sum((0, 1)).tolist()}
    man["draws"] = a.draws
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out) if n.endswith(".npy"))
    print("wrote %d goldens (%d bytes) to %s" % (len(man["files"]), total, out))


if __name__ == "__main__":
    main()
