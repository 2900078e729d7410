#!/usr/bin/env python3
"""gen_image_fixtures.py — the committed JPEG/PNG/npy fixtures of the image decoders and
transforms (spec/fixtures/images/), with PIL's and MindSpore's outputs as goldens.

Run with the oracle venv (pillow, numpy, mindspore):
    /work/venv/bin/python scripts/gen/gen_image_fixtures.py [OUTDIR]

Writes, all small (a few KB each):
  *.jpg / *.png            decoder inputs: baseline / progressive / 4:4:4 / gray JPEG, EXIF
                           orientations 2..8, RGB / RGBA / palette+tRNS / gray / gray+alpha /
                           16-bit RGB / 16-bit gray / 1-bit / interlaced PNG
  <file>.c<N>.npy          PIL's pixels: ImageOps.exif_transpose(Image.open(f)).convert(mode)
                           with mode "L"/"RGB" (N = 1, 3) and N = 0 "as stored" (1 for L/LA/I;16/1
                           images, else 3)
  bad_*                    corrupt inputs: truncated, zero bytes, wrong magic, huge declared
                           size (valid headers), bad CRC, CMYK JPEG
  ms_*.npy                 MindSpore 2.10 vision op outputs on rgb_baseline.jpg's pixels (the
                           deterministic ops: Resize to a size and by the shorter side,
                           CenterCrop with and without padding, Normalize + HWC2CHW, Rescale,
                           RandomCrop with crop = padded size (so only the padding modes show))
  ms_cases.txt             one line per ms_*.npy: name op args
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../spec/fixtures/images")
os.makedirs(OUT, exist_ok=True)
rs = np.random.RandomState(20261204)


def photo(h, w):
    """A smooth image with texture (JPEG-like content, not pure noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 128 + 90 * np.cos((x + y) / 9.0)
    b = 255 * (x / max(w - 1, 1)) * (1 - y / max(h - 1, 1))
    img = np.stack([r, g, b], -1) + rs.normal(0, 12, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def golden(path):
    im = Image.open(path)
    if path.endswith(".jpg"):
        im = ImageOps.exif_transpose(im)
    stored1 = im.mode in ("L", "LA", "I;16", "I;16B", "I", "1")
    for n, mode in ((1, "L"), (3, "RGB")):
        a = np.asarray(im.convert(mode))
        if a.ndim == 2:
            a = a[:, :, None]
        np.save(path + ".c%d.npy" % n, np.ascontiguousarray(a, dtype=np.uint8))
        if (n == 1) == stored1:
            np.save(path + ".c0.npy", np.ascontiguousarray(a, dtype=np.uint8))


def p(name):
    return os.path.join(OUT, name)


good = []
base = photo(40, 56)
Image.fromarray(base).save(p("rgb_baseline.jpg"), quality=90)
Image.fromarray(base).save(p("rgb_progressive.jpg"), quality=85, progressive=True)
Image.fromarray(base).save(p("rgb_444.jpg"), quality=95, subsampling=0)
Image.fromarray(photo(33, 21)).save(p("rgb_odd.jpg"), quality=75, subsampling=1)  # 4:2:2, odd size
Image.fromarray(base[:, :, 1]).save(p("gray.jpg"), quality=90)
good += ["rgb_baseline.jpg", "rgb_progressive.jpg", "rgb_444.jpg", "rgb_odd.jpg", "gray.jpg"]
small = photo(6, 10)
for o in range(2, 9):
    ex = Image.Exif()
    ex[0x0112] = o
    Image.fromarray(small).save(p("exif_o%d.jpg" % o), quality=95, exif=ex.tobytes())
    good.append("exif_o%d.jpg" % o)

Image.fromarray(base).save(p("rgb.png"))
rgba = np.concatenate([base, rs.randint(0, 256, size=(40, 56, 1)).astype(np.uint8)], -1)
Image.fromarray(rgba, "RGBA").save(p("rgba.png"))
pal = Image.fromarray(base).quantize(colors=16)
pal.save(p("palette.png"), transparency=3)
Image.fromarray(base[:, :, 0]).save(p("gray.png"))
la = np.stack([base[:, :, 0], base[:, :, 2]], -1)
Image.fromarray(la, "LA").save(p("gray_alpha.png"))


def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def write_png(path, w, h, depth, ctype, rows, interlace=0):
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    data += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    open(path, "wb").write(data)


# 16-bit RGB and gray (PIL writes 16-bit gray from I;16; RGB 16 by hand)
rgb16 = (base.astype(np.uint16) * 257 + rs.randint(0, 257, size=base.shape)).astype(">u2")
write_png(p("rgb16.png"), 56, 40, 16, 2, [rgb16[y].tobytes() for y in range(40)])
g16 = np.zeros((12, 9), ">u2")
g16[:] = rs.randint(0, 65536, size=(12, 9))
g16[:4] = rs.randint(0, 300, size=(4, 9))  # some values below 256 (PIL clips the rest)
write_png(p("gray16.png"), 9, 12, 16, 0, [g16[y].tobytes() for y in range(12)])
bits = np.packbits(rs.randint(0, 2, size=(10, 16)).astype(np.uint8), axis=1)
write_png(p("gray1bit.png"), 13, 10, 1, 0, [bits[y].tobytes() for y in range(10)])
# Adam7: PIL cannot write it; re-encode by hand with the reference interlacer
adam = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]  # (x0, y0, dx, dy)
raw = b""
for x0, y0, dx, dy in adam:
    sub = base[y0::dy, x0::dx]
    if sub.size:
        raw += b"".join(b"\x00" + sub[y].tobytes() for y in range(sub.shape[0]))
data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 56, 40, 8, 2, 0, 0, 1))
data += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
open(p("interlaced.png"), "wb").write(data)
good += ["rgb.png", "rgba.png", "palette.png", "gray.png", "gray_alpha.png", "rgb16.png", "gray16.png",
         "gray1bit.png", "interlaced.png"]
for f in good:
    golden(p(f))
assert (np.load(p("interlaced.png.c3.npy")) == base).all(), "Adam7 fixture does not decode to its source in PIL"

# ---- corrupt inputs
jb = open(p("rgb_baseline.jpg"), "rb").read()
pb = open(p("rgb.png"), "rb").read()
open(p("bad_truncated.jpg"), "wb").write(jb[: len(jb) // 2])
open(p("bad_truncated_progressive.jpg"), "wb").write(open(p("rgb_progressive.jpg"), "rb").read()[:900])
open(p("bad_truncated.png"), "wb").write(pb[: len(pb) // 2])
open(p("bad_zero.jpg"), "wb").write(b"")
open(p("bad_magic.jpg"), "wb").write(b"GIF89a this is not a jpeg")
open(p("bad_header_only.jpg"), "wb").write(jb[:2])
# huge declared size: PNG IHDR 100000 x 100000 with a valid CRC, JPEG SOF0 65000 x 65000
open(p("bad_huge.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                                    + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
sof = jb.find(b"\xff\xc0")
hj = bytearray(jb)
hj[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
open(p("bad_huge.jpg"), "wb").write(bytes(hj))
bc = bytearray(pb)
idat = pb.find(b"IDAT")
bc[idat + 8] ^= 0xFF  # a data byte: the chunk's CRC no longer matches
open(p("bad_crc.png"), "wb").write(bytes(bc))
Image.fromarray(base).convert("CMYK").save(p("bad_cmyk.jpg"), quality=90)

# ---- MindSpore vision ops on rgb_baseline.jpg's pixels (PIL == spore's decode)
import mindspore.dataset.vision as V  # noqa: E402
from mindspore.dataset.vision import Border  # noqa: E402

img = np.load(p("rgb_baseline.jpg.c3.npy"))
cases = []


def ms(name, args, fn):
    out = fn(img)
    np.save(p("ms_%s.npy" % name), np.ascontiguousarray(out))
    cases.append("%s %s" % (name, args))


ms("resize_33x47", "resize 33 47", V.Resize((33, 47)))
ms("resize_90x61", "resize 90 61", V.Resize((90, 61)))
ms("resize_20x28", "resize 20 28", V.Resize((20, 28)))          # exactly 1/2: INTER_AREA in cv::resize
ms("resize_short24", "resize_short 24 0", V.Resize(24))
ms("resize_short50", "resize_short 50 0", V.Resize(50))
ms("center_21x30", "center 21 30", V.CenterCrop((21, 30)))
ms("center_45x30", "center 45 30", V.CenterCrop((45, 30)))      # pads the height
ms("center_51x61", "center 51 61", V.CenterCrop((51, 61)))      # pads both
mean, std = [0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]
ms("normalize_chw", "normalize_chw 0 0", lambda a: V.HWC2CHW()(V.Normalize(mean, std)(a)))
ms("rescale", "rescale 0 0", V.Rescale(1.0 / 255, -0.5))
ms("resize_normalize_chw", "resize_normalize_chw 32 32",
   lambda a: V.HWC2CHW()(V.Normalize(mean, std)(V.Resize((32, 32))(a))))
for mode, nm in ((Border.CONSTANT, "constant"), (Border.EDGE, "edge"), (Border.REFLECT, "reflect"),
                 (Border.SYMMETRIC, "symmetric")):
    # crop = padded size: the offset is 0, only padding shows (l, t, r, b) = (3, 2, 5, 4)
    ms("pad_%s" % nm, "pad_%s 46 64" % nm,
       V.RandomCrop((40 + 2 + 4, 56 + 3 + 5), padding=(3, 2, 5, 4), padding_mode=mode, fill_value=(7, 8, 9)))
open(p("ms_cases.txt"), "w").write("\n".join(cases) + "\n")
print("wrote", len(os.listdir(OUT)), "files to", OUT)
