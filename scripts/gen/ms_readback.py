#!/usr/bin/env python3
"""ms_readback.py — read checkpoints that spore wrote back with MindSpore itself.

The oracle for spore's writer: every file must load with mindspore.load_checkpoint
(with crc_check / dec_key where given) and give the same names, dtypes, shapes and
bytes as spore's own reader reports (compare with `luajit scripts/inspect.lua --json`).

  /tmp/oracle-venv/bin/python scripts/gen/ms_readback.py FILE.ckpt [--crc] [--dec-key KEY --dec-mode MODE]

Prints one JSON object per file: {"file", "entries": [{"name", "dtype", "shape", "sha256"}]}.
Not used by `make test` (which never needs MindSpore).
"""
import argparse, hashlib, json, sys

import mindspore as ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--crc", action="store_true")
    ap.add_argument("--dec-key")
    ap.add_argument("--dec-mode", default="AES-GCM")
    a = ap.parse_args()
    for path in a.files:
        kw = {"crc_check": a.crc}
        if a.dec_key:
            kw.update(dec_key=a.dec_key.encode(), dec_mode=a.dec_mode)
        d = ms.load_checkpoint(path, **kw)
        out = []
        for name, p in d.items():
            if isinstance(p, str):
                out.append({"name": name, "dtype": "str", "value": p})
                continue
            if p.dtype == ms.bfloat16:
                # numpy has no bfloat16: widen to float32 (exact) and keep the top 16 bits
                import numpy as np
                f = p.astype(ms.float32).asnumpy().astype(np.float32)
                raw = (f.view(np.uint32) >> 16).astype("<u2").tobytes()
            else:
                raw = p.asnumpy().tobytes()
            out.append({"name": name, "dtype": str(p.dtype), "shape": list(p.shape),
                        "sha256": hashlib.sha256(raw).hexdigest()})
        print(json.dumps({"file": path, "entries": out}))


if __name__ == "__main__":
    sys.exit(main())
