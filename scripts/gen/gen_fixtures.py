#!/usr/bin/env python3
"""Golden-fixture generator for spore (MindSpore checkpoint loader / trainer).

Independent oracles only: real MindSpore writes/reads the checkpoints, PyTorch
(float64) computes the kernel numerics, and a hand-written protobuf descriptor +
`cryptography` re-parse / re-decrypt the files so their bytes are checked twice.

How to run (from the repository root):

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install mindspore==2.10.0 torch numpy protobuf cryptography safetensors
    /tmp/oracle-venv/bin/python scripts/gen/gen_fixtures.py            # writes spec/fixtures/
    /tmp/oracle-venv/bin/python scripts/gen/gen_fixtures.py --out DIR  # elsewhere

Versions used for the committed fixtures (also recorded in spec/fixtures/versions.json):
    Python 3.11.7, mindspore 2.10.0 (CPU wheel from PyPI), torch 2.15.0 (PyPI wheel, run on CPU),
    numpy 2.4.6, protobuf 7.36.2, cryptography 50.0.2, safetensors 0.8.0.

Everything is seeded (numpy default_rng with fixed seeds; all net weights are set
explicitly from numpy, never from MindSpore's initialisers), so a rerun with the same
versions gives byte-identical files except the encrypted ones (MindSpore draws a random
IV per block; their *plaintext* is checked to equal ms_small.ckpt).
"""
import argparse
import binascii
import hashlib
import json
import os
import stat
import struct
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("GLOG_v", "3")  # silence MindSpore's C++ warnings

OUT = None
REPORT = {"notes": []}   # facts observed while generating, written to observations.json


def note(msg):
    print("NOTE:", msg)
    REPORT["notes"].append(msg)


# ----------------------------------------------------------------------------
# Independent protobuf reader (schema from the brief, built without protoc)
# ----------------------------------------------------------------------------
def _build_proto_classes():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="spore_oracle_checkpoint.proto",
                                            package="spore_oracle", syntax="proto2")
    tp = fd.message_type.add(name="TensorProto")
    tp.field.add(name="dims", number=1, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    tp.field.add(name="tensor_type", number=2, label=F.LABEL_REQUIRED, type=F.TYPE_STRING)
    tp.field.add(name="tensor_content", number=3, label=F.LABEL_REQUIRED, type=F.TYPE_BYTES)
    mp = fd.message_type.add(name="MapTensorProto")
    mp.field.add(name="tensor", number=1, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                 type_name=".spore_oracle.TensorProto")
    ck = fd.message_type.add(name="Checkpoint")
    val = ck.nested_type.add(name="Value")
    val.oneof_decl.add(name="value")
    val.field.add(name="tag", number=1, label=F.LABEL_REQUIRED, type=F.TYPE_STRING)
    val.field.add(name="tensor", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                  type_name=".spore_oracle.TensorProto", oneof_index=0)
    val.field.add(name="maptensor", number=3, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                  type_name=".spore_oracle.MapTensorProto", oneof_index=0)
    ck.field.add(name="value", number=1, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                 type_name=".spore_oracle.Checkpoint.Value")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    get = message_factory.GetMessageClass
    return (get(pool.FindMessageTypeByName("spore_oracle.Checkpoint")),
            get(pool.FindMessageTypeByName("spore_oracle.TensorProto")))


PB_Checkpoint, PB_Tensor = _build_proto_classes()


def _varint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, i


def wire_dims_encoding(data):
    """Walk the raw wire format; per Value return how dims were encoded:
    'none' (no field 1), 'unpacked' (wire type 0 varints) or 'packed' (wire type 2)."""
    out = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        fno, wt = key >> 3, key & 7
        assert fno == 1 and wt == 2, "top level must be repeated Value (field 1, LEN)"
        ln, i = _varint(data, i)
        vend = i + ln
        enc = "none"
        j = i
        while j < vend:
            k, j = _varint(data, j)
            f2, w2 = k >> 3, k & 7
            if w2 == 2:
                l2, j = _varint(data, j)
                if f2 == 2:  # TensorProto
                    t = j
                    tend = j + l2
                    while t < tend:
                        k3, t = _varint(data, t)
                        f3, w3 = k3 >> 3, k3 & 7
                        if w3 == 0:
                            _, t = _varint(data, t)
                            if f3 == 1:
                                enc = "unpacked" if enc == "none" else enc
                        else:
                            l3, t = _varint(data, t)
                            if f3 == 1:
                                enc = "packed"
                            t += l3
                j += l2
            elif w2 == 0:
                _, j = _varint(data, j)
            else:
                raise ValueError("unexpected wire type %d" % w2)
        out.append(enc)
        i = vend
    return out


def strip_crc(data):
    if len(data) >= 17 and data[-17:-10] == b"crc_num":
        want = int.from_bytes(data[-10:], "big")
        body = data[:-17]
        got = binascii.crc32(body)
        assert got == want, "CRC mismatch %x != %x" % (got, want)
        return body, {"crc_num": want, "crc_hex": "%08x" % want}
    return data, None


# ----------------------------------------------------------------------------
# Independent decryptor for MindSpore's encrypted checkpoints
# ----------------------------------------------------------------------------
MAGIC = {0x7F3A5ED8: "AES-GCM", 0x7F3A5ED9: "AES-CBC", 0x7F3A5EDA: "SM4-CBC"}


def decrypt_blocks(data, key):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives import padding
    out = bytearray()
    blocks = []
    i = 0
    while i < len(data):
        magic, = struct.unpack_from("<I", data, i)
        mode = MAGIC[magic]
        i += 4
        tag = None
        if mode == "AES-GCM":
            tag = data[i:i + 16]
            i += 16
        L, = struct.unpack_from("<i", data, i)
        i += 4
        start = i
        iv_len, = struct.unpack_from("<i", data, i)
        i += 4
        iv = data[i:i + iv_len]
        i += iv_len
        clen, = struct.unpack_from("<i", data, i)
        i += 4
        ct = data[i:i + clen]
        i += clen
        assert i - start == L, (i - start, L)
        if mode == "AES-GCM":
            # MindSpore stores a 16-byte IV but OpenSSL's EVP_aes_*_gcm default IV length is 12, and
            # MindSpore never sets EVP_CTRL_GCM_SET_IVLEN: only iv[:12] is used (iv[:16] -> InvalidTag).
            dec = Cipher(algorithms.AES(key), modes.GCM(iv[:12], tag)).decryptor()
            pt = dec.update(ct) + dec.finalize()
        else:
            alg = algorithms.AES(key) if mode == "AES-CBC" else algorithms.SM4(key)
            dec = Cipher(alg, modes.CBC(iv)).decryptor()
            padded = dec.update(ct) + dec.finalize()
            unp = padding.PKCS7(128).unpadder()
            pt = unp.update(padded) + unp.finalize()
        blocks.append({"mode": mode, "gcm_nonce_bytes_used": 12 if mode == "AES-GCM" else None, "L": L, "iv_len": iv_len, "cipher_len": clen,
                       "plain_len": len(pt)})
        out += pt
    return bytes(out), blocks


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
NP_OF = {"Int8": "<i1", "UInt8": "<u1", "Int16": "<i2", "UInt16": "<u2", "Int32": "<i4",
         "UInt32": "<u4", "Int64": "<i8", "UInt64": "<u8", "Float16": "<f2", "Float32": "<f4",
         "Float64": "<f8", "Bool": "<u1"}


def decode_values(ttype, raw):
    """Python values of the raw LE bytes (floats as repr strings)."""
    if ttype == "str":
        return raw.decode("utf-32-le")
    if ttype == "BFloat16":
        u16 = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return [repr(float(v)) for v in u16.view("<f4")]
    arr = np.frombuffer(raw, NP_OF[ttype])
    if ttype == "Bool":
        return [bool(v) for v in arr]
    if ttype.startswith("Float"):
        return [repr(float(v)) for v in arr]
    return [int(v) for v in arr]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


def fix_perm(path):
    # MindSpore leaves its files 0400; make them ordinary so reruns / git are easy.
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)


def rm(path):
    if os.path.exists(path):
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
        os.remove(path)


def ms_param_to_le_bytes(p):
    """Raw bytes of a loaded MindSpore Parameter/Tensor, independent of asnumpy for bf16."""
    import mindspore as ms
    if p.dtype == ms.bfloat16:
        f32 = p.float().asnumpy().astype("<f4")
        return (f32.view("<u4") >> 16).astype("<u2").tobytes()  # exact: bf16->f32 is exact
    a = p.asnumpy()
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()


# ----------------------------------------------------------------------------
# Sidecar: parse file ourselves, cross-check against MindSpore's load_checkpoint
# ----------------------------------------------------------------------------
def sidecar_ckpt(fname, dec_key=None, dec_mode=None, made_by="mindspore.save_checkpoint", extra=None):
    import mindspore as ms
    path = os.path.join(OUT, fname)
    data = open(path, "rb").read()
    info = {"file": fname, "made_by": made_by, "file_size": len(data), "file_sha256": sha(data)}
    if dec_key is not None:
        plain, blocks = decrypt_blocks(data, dec_key)
        info["encryption"] = {"mode": dec_mode, "key_ascii": dec_key.decode(), "blocks": blocks,
                              "plaintext_sha256": sha(plain),
                              "note": "IV is random per save: file bytes differ per run; plaintext is stable"}
        data = plain
    body, crc = strip_crc(data)
    if crc:
        info["crc"] = crc
    ck = PB_Checkpoint()
    ck.ParseFromString(body)
    encs = wire_dims_encoding(body)
    # join consecutive same-tag slices (only large tensors are sliced)
    entries = []
    for v, enc in zip(ck.value, encs):
        if v.WhichOneof("value") != "tensor":
            entries.append({"name": v.tag, "kind": "maptensor"})
            continue
        t = v.tensor
        if entries and entries[-1]["name"] == v.tag and "raw" in entries[-1]:
            entries[-1]["raw"] += t.tensor_content
            entries[-1]["slices"] += 1
            continue
        entries.append({"name": v.tag, "tensor_type": t.tensor_type, "dims_stored": list(t.dims),
                        "dims_wire": enc, "raw": t.tensor_content, "slices": 1})
    # MindSpore's own view
    kw = {}
    if dec_key is not None:
        kw = dict(dec_key=dec_key, dec_mode=dec_mode)
    if crc:
        kw["crc_check"] = True
    loaded = ms.load_checkpoint(path, **kw)
    assert list(loaded.keys()) == [e["name"] for e in entries], (list(loaded.keys()), [e["name"] for e in entries])
    tensors = []
    for e in entries:
        raw = e.pop("raw")
        e["nbytes"] = len(raw)
        e["sha256"] = sha(raw)
        lp = loaded[e["name"]]
        if e["tensor_type"] == "str":
            e["shape"] = []
            e["value"] = raw.decode("utf-32-le")
            assert lp == e["value"], (lp, e["value"])
            e["ms_loaded_as"] = "python str"
        else:
            e["shape"] = list(lp.shape)   # MindSpore's interpretation (dims [0] -> ())
            e["ms_dtype"] = str(lp.dtype)
            assert str(lp.dtype) == e["tensor_type"], (lp.dtype, e["tensor_type"])
            assert ms_param_to_le_bytes(lp) == raw, e["name"]
            n = int(np.prod(e["shape"])) if e["shape"] else 1
            e["numel"] = n
            if n <= 64:
                e["values"] = decode_values(e["tensor_type"], raw)
        tensors.append(e)
    info["tensors"] = tensors
    if extra:
        info.update(extra)
    write_json(fname + ".json", info)
    return info, body


def sidecar_safetensors(fname, crc):
    import mindspore as ms
    from safetensors import safe_open
    path = os.path.join(OUT, fname)
    data = open(path, "rb").read()
    hlen, = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + hlen])
    info = {"file": fname, "made_by": "mindspore.save_checkpoint(format='safetensors')",
            "file_size": len(data), "file_sha256": sha(data), "header_len": hlen,
            "metadata": header.get("__metadata__")}
    loaded = ms.load_checkpoint(path, format="safetensors", crc_check=crc)
    tensors = []
    chain = 0
    with safe_open(path, "np") as f:
        for k in [k for k in header if k != "__metadata__"]:
            h = header[k]
            raw = data[8 + hlen + h["data_offsets"][0]: 8 + hlen + h["data_offsets"][1]]
            e = {"name": k, "st_dtype": h["dtype"], "shape": h["shape"], "data_offsets": h["data_offsets"],
                 "nbytes": len(raw), "sha256": sha(raw), "ms_dtype": str(loaded[k].dtype)}
            assert ms_param_to_le_bytes(loaded[k]) == raw
            n = int(np.prod(h["shape"])) if h["shape"] else 1
            if n <= 64:
                tt = {"F32": "Float32", "I64": "Int64", "I32": "Int32"}.get(h["dtype"])
                if tt:
                    e["values"] = decode_values(tt, raw)
            tensors.append(e)
    info["tensors"] = tensors
    info["ms_loaded_keys_order"] = list(loaded.keys())
    if crc:
        # MindSpore chains crc32 over sorted(names): name utf-8 bytes, then bytes(ndarray).
        # bytes() of a 0-d INTEGER ndarray calls __index__ -> that many zero bytes (!), not the data.
        naive = quirk = 0
        for k in sorted(x for x in header if x != "__metadata__"):
            h = header[k]
            raw = data[8 + hlen + h["data_offsets"][0]: 8 + hlen + h["data_offsets"][1]]
            naive = binascii.crc32(raw, binascii.crc32(k.encode(), naive))
            if h["shape"] == [] and h["dtype"][0] in "IU":
                qraw = bytes(int.from_bytes(raw, "little", signed=h["dtype"][0] == "I"))
            elif h["shape"] == [] and h["dtype"] == "BOOL":
                qraw = bytes(int(raw[0]))
            else:
                qraw = raw
            quirk = binascii.crc32(qraw, binascii.crc32(k.encode(), quirk))
        stored = header["__metadata__"]["crc_num"]
        assert str(quirk) == stored, (quirk, naive, stored)
        info["crc_chain"] = {"stored": stored, "recomputed_mindspore_way": str(quirk),
                             "recomputed_naive_raw_bytes": str(naive),
                             "rule": "crc32 chained over keys in sorted order: name utf-8, then bytes(ndarray); "
                                     "for a 0-d integer/bool tensor with value v MindSpore feeds bytes(v) = v zero "
                                     "bytes (numpy __index__), not the tensor data"}
        if naive != quirk:
            note("%s: safetensors crc_num only matches when 0-d integer tensors contribute bytes(value) zero "
                 "bytes (MindSpore quirk); naive raw-bytes chain %d != stored %s" % (fname, naive, stored))
    write_json(fname + ".json", info)
    return info


# ----------------------------------------------------------------------------
# Part A: MindSpore checkpoints
# ----------------------------------------------------------------------------
def small_net():
    import mindspore as ms
    import mindspore.nn as nn
    import mindspore.ops as ops

    class Small(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, has_bias=True)          # pad_mode 'same'
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2, 2)
            self.flatten = nn.Flatten()
            self.fc = nn.Dense(16, 5)

        def construct(self, x):
            return self.fc(self.flatten(self.pool(self.relu(self.bn(self.conv(x))))))

    net = Small()
    rng = np.random.default_rng(1234)
    vals = {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)) * 0.3,
        "conv.bias": rng.standard_normal(4) * 0.1,
        "bn.moving_mean": rng.standard_normal(4) * 0.1,
        "bn.moving_variance": 1.0 + rng.random(4),
        "bn.gamma": 1.0 + rng.standard_normal(4) * 0.1,
        "bn.beta": rng.standard_normal(4) * 0.1,
        "fc.weight": rng.standard_normal((5, 16)) * 0.25,
        "fc.bias": rng.standard_normal(5) * 0.1,
    }
    for n, p in net.parameters_and_names():
        p.set_data(ms.Tensor(vals[n].astype(np.float32)))
    return net


SMALL_X_SEED = 99


def small_batch():
    rng = np.random.default_rng(SMALL_X_SEED)
    x = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 4], np.int32)
    return x, y


APPEND = {"epoch_num": 3, "step_num": 7, "lr_f": 0.5, "note": "hello"}
KEY = b"0123456789abcdef"


def gen_mindspore():
    import mindspore as ms
    import mindspore.nn as nn
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(0)

    def save(obj, fname, **kw):
        path = os.path.join(OUT, fname)
        rm(path)
        ms.save_checkpoint(obj, path, **kw)
        fix_perm(path)
        return path

    # --- ms_small.ckpt -------------------------------------------------------
    net = small_net()
    save(net, "ms_small.ckpt", append_dict=dict(APPEND))
    _, small_body = sidecar_ckpt("ms_small.ckpt", extra={"append_dict": APPEND})
    # --- crc -----------------------------------------------------------------
    save(net, "ms_small_crc.ckpt", append_dict=dict(APPEND), crc_check=True)
    info, body = sidecar_ckpt("ms_small_crc.ckpt", extra={"append_dict": APPEND})
    assert body == small_body, "crc file body must equal ms_small.ckpt"
    note("crc_check=True supported in %s: trailer b'crc_num' + 10-byte big-endian zlib CRC32 of all preceding bytes; body identical to ms_small.ckpt" % ms.__version__)
    # --- safetensors ---------------------------------------------------------
    for fname, crc in (("ms_small.safetensors", False), ("ms_small_crc.safetensors", True)):
        try:
            save(net, fname, format="safetensors", append_dict=dict(APPEND), crc_check=crc)
        except Exception as ex:
            note("%s: save_checkpoint(format='safetensors') fails with a str append_dict entry (%s); "
                 "saved without 'note'" % (fname, str(ex).splitlines()[0][:160]))
            rm(os.path.join(OUT, fname))
            rm(os.path.join(OUT, fname.replace(".safetensors", ".tmp")))
            save(net, fname, format="safetensors", crc_check=crc,
                 append_dict={k: v for k, v in APPEND.items() if not isinstance(v, str)})
        sidecar_safetensors(fname, crc)
    # --- encrypted -----------------------------------------------------------
    for fname, mode in (("ms_enc_gcm.ckpt", "AES-GCM"), ("ms_enc_cbc.ckpt", "AES-CBC"),
                        ("ms_enc_sm4.ckpt", "SM4-CBC")):
        try:
            save(net, fname, append_dict=dict(APPEND), enc_key=KEY, enc_mode=mode)
        except Exception as ex:  # pragma: no cover
            note("save with enc_mode=%s failed: %r" % (mode, ex))
            continue
        _, body = sidecar_ckpt(fname, dec_key=KEY, dec_mode=mode, extra={"append_dict": APPEND})
        assert body == small_body, mode + " plaintext must equal ms_small.ckpt"
        note("%s: %s decrypted independently with `cryptography`; plaintext == ms_small.ckpt%s" % (
            fname, mode, "; GCM uses only the first 12 bytes of the stored 16-byte IV as nonce, no AAD, "
                         "tag stored right after the magic" if mode == "AES-GCM" else "; PKCS#7 padding, 16-byte IV"))
    # --- dtypes --------------------------------------------------------------
    gen_dtypes(save)
    # --- training checkpoints -------------------------------------------------
    gen_train(save, "ms_momentum.ckpt", lambda ps: nn.Momentum(ps, 0.01, 0.9))
    gen_train(save, "ms_momentum_dynlr.ckpt", lambda ps: nn.Momentum(ps, [0.01, 0.008, 0.006, 0.004], 0.9))
    gen_train(save, "ms_adam.ckpt", lambda ps: nn.Adam(ps, 0.01))
    # --- hand-made files read back by MindSpore -------------------------------
    gen_handmade()


def gen_dtypes(save):
    import mindspore as ms
    from mindspore import Tensor
    inf, nan = float("inf"), float("nan")
    fvals = [-1.5, 0.1, 0.0, -0.0, 1.0 / 3.0, 2.5e-3, -7.25, inf, -inf, nan]
    items = [
        ("bf16", Tensor(np.array(fvals, np.float32)).astype(ms.bfloat16)),
        ("bf16_2x3", Tensor(np.array([[1.0, -2.0, 0.1], [3.140625, -0.3, 1e-3]], np.float32)).astype(ms.bfloat16)),
        ("f16", Tensor(np.array(fvals + [65504.0, 6e-8], np.float16))),
        ("f32", Tensor(np.array(fvals + [1e-40, 3.4e38], np.float32))),
        ("f64", Tensor(np.array(fvals + [1e-310, 1.7e308], np.float64))),
        ("i8", Tensor(np.array([-128, -1, 0, 1, 127], np.int8))),
        ("u8", Tensor(np.array([0, 1, 127, 128, 255], np.uint8))),
        ("i16", Tensor(np.array([-32768, -2, 0, 3, 32767], np.int16))),
        ("u16", Tensor(np.array([0, 1, 65535], np.uint16))),
        ("i32", Tensor(np.array([-2147483648, -3, 0, 5, 2147483647], np.int32))),
        ("u32", Tensor(np.array([0, 1, 4294967295], np.uint32))),
        ("i64", Tensor(np.array([-9223372036854775808, -4, 0, 6, 9223372036854775807], np.int64))),
        ("u64", Tensor(np.array([0, 1, 18446744073709551615], np.uint64))),
        ("bool", Tensor(np.array([True, False, True, True], np.bool_))),
        ("f32_2x3x2", Tensor((np.arange(12, dtype=np.float32) - 5.5).reshape(2, 3, 2) / 10)),
        ("scalar_f32", Tensor(np.array(3.25, np.float32))),
        ("scalar_i32", Tensor(np.array(-7, np.int32))),
        ("scalar_bf16", Tensor(np.array(-0.1, np.float32)).astype(ms.bfloat16)),
        ("scalar_bool", Tensor(np.array(True))),
        ("empty_f32", Tensor(np.zeros((0, 3), np.float32))),
    ]
    ok = []
    for name, t in items:  # probe each, so one unsupported type does not kill the file
        try:
            p = os.path.join(OUT, "_probe.ckpt")
            rm(p)
            ms.save_checkpoint([{"name": name, "data": t}], p)
            if os.path.getsize(p) == 0:
                raise RuntimeError("save_checkpoint wrote a 0-byte file: tensors with 0 elements are silently "
                                   "dropped (no Value is written), so load_checkpoint then says the dict is empty")
            ms.load_checkpoint(p)
            ok.append({"name": name, "data": t})
        except Exception as ex:
            note("dtype fixture item %s not saved/loaded by MindSpore: %s" % (name, str(ex).splitlines()[0][:200]))
        finally:
            rm(os.path.join(OUT, "_probe.ckpt"))
    save(ok, "ms_bf16.ckpt", append_dict={"a_int": -5, "a_float": 0.1, "a_str": "héllo ✓", "a_bool": True})
    info, _ = sidecar_ckpt("ms_bf16.ckpt", extra={"note": "list of {name,data} tensors; append_dict "
                                                  "{a_int:-5, a_float:0.1, a_str:'héllo ✓', a_bool:True}"})
    for e in info["tensors"]:
        if e["name"].startswith("scalar") or e["name"].startswith("a_") or e["name"] == "empty_f32":
            note("ms_bf16.ckpt %s: tensor_type=%s dims_stored=%s (wire %s) -> load_checkpoint shape %s" %
                 (e["name"], e["tensor_type"], e["dims_stored"], e["dims_wire"], e["shape"]))


def gen_train(save, fname, make_opt):
    import mindspore as ms
    import mindspore.nn as nn
    net = small_net()
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = make_opt(net.trainable_params())
    train = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt)
    train.set_train()
    x, y = small_batch()
    losses = []
    for _ in range(2):
        losses.append(float(train(ms.Tensor(x), ms.Tensor(y)).asnumpy()))
    save(train, fname)
    sidecar_ckpt(fname, extra={
        "training": {"net": "same Small net + initial weights as ms_small.ckpt (conv same 3x3 bias, BN2d, ReLU, "
                            "MaxPool2d(2,2), Flatten, Dense(16,5))",
                     "optimizer": type(opt).__name__, "steps": 2,
                     "loss": "SoftmaxCrossEntropyWithLogits(sparse=True, reduction='mean')",
                     "batch_x_shape": list(x.shape), "batch_x_seed": "np.random.default_rng(%d).standard_normal((4,3,4,4)) as float32" % SMALL_X_SEED,
                     "batch_x": [repr(float(v)) for v in x.ravel()],
                     "batch_y": y.tolist(),
                     "losses_per_step": [repr(v) for v in losses]}})


def gen_handmade():
    """Tiny checkpoints written by our own protobuf code; record whether MindSpore loads them."""
    import mindspore as ms
    res = {}

    def build(packed):
        ck = PB_Checkpoint()
        for tag, dims, tt, content in [
            ("w", [2, 3], "Float32", np.arange(6, dtype="<f4").tobytes()),
            ("s_nodims", None, "Float32", np.array([2.5], "<f4").tobytes()),
            ("s_dims0", [0], "Int64", np.array([42], "<i8").tobytes()),
            ("name", [0], "str", "abc".encode("utf-32-le")),
        ]:
            v = ck.value.add()
            v.tag = tag
            v.tensor.tensor_type = tt
            v.tensor.tensor_content = content
            if dims is not None:
                v.tensor.dims.extend(dims)
        raw = ck.SerializeToString()
        if packed:
            # re-encode field 1 of each TensorProto as packed; done by hand since proto2 can't
            raw = b""
            for v in ck.value:
                t = v.tensor
                tb = b""
                if len(t.dims):
                    pk = b"".join(_enc_varint(d) for d in t.dims)
                    tb += b"\x0a" + _enc_varint(len(pk)) + pk
                tt = t.tensor_type.encode()
                tb += b"\x12" + _enc_varint(len(tt)) + tt
                tb += b"\x1a" + _enc_varint(len(t.tensor_content)) + t.tensor_content
                tag = v.tag.encode()
                vb = b"\x0a" + _enc_varint(len(tag)) + tag + b"\x12" + _enc_varint(len(tb)) + tb
                raw += b"\x0a" + _enc_varint(len(vb)) + vb
        return raw

    for fname, packed in (("hand_unpacked.ckpt", False), ("hand_packed.ckpt", True)):
        raw = build(packed)
        path = os.path.join(OUT, fname)
        with open(path, "wb") as f:
            f.write(raw)
        check = PB_Checkpoint()
        check.ParseFromString(raw)
        try:
            d = ms.load_checkpoint(path)
            r = {k: ({"shape": list(v.shape), "dtype": str(v.dtype), "values": v.asnumpy().ravel().tolist()}
                     if not isinstance(v, str) else {"str": v}) for k, v in d.items()}
            res[fname] = {"loaded": True, "result": r}
        except Exception as ex:
            res[fname] = {"loaded": False, "error": str(ex)[:300]}
        note("%s (written by gen_fixtures.py's own protobuf code, dims %s; scalar 's_nodims' has no dims, "
             "'s_dims0' has dims [0]): MindSpore load_checkpoint -> %s" %
             (fname, "packed" if packed else "unpacked", json.dumps(res[fname])))
        sidecar_ckpt(fname, made_by="gen_fixtures.py hand-written protobuf (%s dims)" % ("packed" if packed else "unpacked"),
                     extra={"mindspore_load_result": res[fname]})


def _enc_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ----------------------------------------------------------------------------
# Part B: PyTorch float64 kernel goldens (one binary blob + manifest)
# ----------------------------------------------------------------------------
class Blob:
    def __init__(self):
        self.buf = bytearray()
        self.arrays = {}

    def add(self, name, a, dtype="f64"):
        a = np.ascontiguousarray(np.asarray(a))
        if dtype == "f64":
            a = a.astype("<f8")
        elif dtype == "f32":
            a = a.astype("<f4")
        elif dtype == "i32":
            a = a.astype("<i4")
        elif dtype == "i64":
            a = a.astype("<i8")
        while len(self.buf) % 8:
            self.buf.append(0)
        b = a.tobytes()
        assert name not in self.arrays, name
        self.arrays[name] = {"dtype": dtype, "shape": list(a.shape), "offset": len(self.buf), "nbytes": len(b),
                             "sha256": sha(b)}
        self.buf += b
        return name

    def save(self, stem, meta):
        with open(os.path.join(OUT, stem + ".bin"), "wb") as f:
            f.write(self.buf)
        meta = dict(meta)
        meta["blob"] = stem + ".bin"
        meta["blob_sha256"] = sha(bytes(self.buf))
        meta["arrays"] = self.arrays
        write_json(stem + ".json", meta)


def same_pads(in_size, k, s, d):
    out = -(-in_size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    return total // 2, total - total // 2


def gen_torch_kernels(ms_ok):
    import torch
    import torch.nn.functional as F
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(20240601)
    blob = Blob()
    cases = {}
    T = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)

    # conv2d
    conv_cfgs = [
        dict(name="conv_basic", N=2, Cin=3, H=7, W=6, Cout=4, k=3, stride=1, pad=0, dil=1, groups=1, bias=True),
        dict(name="conv_pad1", N=2, Cin=3, H=6, W=6, Cout=4, k=3, stride=1, pad=1, dil=1, groups=1, bias=True),
        dict(name="conv_stride2", N=2, Cin=3, H=7, W=8, Cout=4, k=3, stride=2, pad=1, dil=1, groups=1, bias=True),
        dict(name="conv_dil2", N=1, Cin=2, H=8, W=7, Cout=3, k=3, stride=1, pad=0, dil=2, groups=1, bias=True),
        dict(name="conv_groups2", N=2, Cin=4, H=5, W=5, Cout=6, k=3, stride=1, pad=1, dil=1, groups=2, bias=True),
        dict(name="conv_1x1_s2_nobias", N=2, Cin=3, H=6, W=5, Cout=4, k=1, stride=2, pad=0, dil=1, groups=1, bias=False),
        dict(name="conv_same_k3_s1", N=2, Cin=3, H=6, W=5, Cout=4, k=3, stride=1, pad="same", dil=1, groups=1, bias=True),
        dict(name="conv_same_k3_s2", N=2, Cin=3, H=8, W=7, Cout=4, k=3, stride=2, pad="same", dil=1, groups=1, bias=False),
        dict(name="conv_same_k4_s1", N=1, Cin=2, H=6, W=6, Cout=3, k=4, stride=1, pad="same", dil=1, groups=1, bias=True),
        dict(name="conv_same_k7_s2", N=1, Cin=3, H=9, W=10, Cout=4, k=7, stride=2, pad="same", dil=1, groups=1, bias=False),
        dict(name="conv_same_k3_s1_dil2", N=1, Cin=2, H=7, W=6, Cout=2, k=3, stride=1, pad="same", dil=2, groups=1, bias=True),
    ]
    for c in conv_cfgs:
        x = rng.standard_normal((c["N"], c["Cin"], c["H"], c["W"]))
        w = rng.standard_normal((c["Cout"], c["Cin"] // c["groups"], c["k"], c["k"])) * 0.5
        b = rng.standard_normal(c["Cout"]) * 0.1 if c["bias"] else None
        xt, wt = T(x), T(w)
        bt = T(b) if b is not None else None
        if c["pad"] == "same":
            pt, pb = same_pads(c["H"], c["k"], c["stride"], c["dil"])
            pl, pr = same_pads(c["W"], c["k"], c["stride"], c["dil"])
            c["pads_top_bottom_left_right"] = [pt, pb, pl, pr]
            xin = F.pad(xt, (pl, pr, pt, pb))
            y = F.conv2d(xin, wt, bt, stride=c["stride"], padding=0, dilation=c["dil"], groups=c["groups"])
        else:
            y = F.conv2d(xt, wt, bt, stride=c["stride"], padding=c["pad"], dilation=c["dil"], groups=c["groups"])
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        n = c["name"]
        arr = {"x": blob.add(n + ".x", x), "w": blob.add(n + ".w", w), "y": blob.add(n + ".y", y.detach().numpy()),
               "dy": blob.add(n + ".dy", dy), "dx": blob.add(n + ".dx", xt.grad.numpy()),
               "dw": blob.add(n + ".dw", wt.grad.numpy())}
        if b is not None:
            arr["b"] = blob.add(n + ".b", b)
            arr["db"] = blob.add(n + ".db", bt.grad.numpy())
        cases[n] = {"op": "conv2d", "config": c, "arrays": arr}

    # maxpool
    for n, (shape, k, s, mode) in {
        "maxpool_3x3_s2_same": ((2, 3, 7, 8), 3, 2, "same"),
        "maxpool_3x3_s2_same_even": ((1, 2, 8, 8), 3, 2, "same"),
        "maxpool_2x2_s2_valid": ((2, 3, 6, 7), 2, 2, "valid"),
    }.items():
        x = rng.standard_normal(shape)
        xt = T(x)
        if mode == "same":
            pt, pb = same_pads(shape[2], k, s, 1)
            pl, pr = same_pads(shape[3], k, s, 1)
            y = F.max_pool2d(F.pad(xt, (pl, pr, pt, pb), value=-float("inf")), k, s)
            pads = [pt, pb, pl, pr]
        else:
            y = F.max_pool2d(xt, k, s)
            pads = [0, 0, 0, 0]
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        cases[n] = {"op": "maxpool2d", "config": {"kernel": k, "stride": s, "pad_mode": mode,
                                                  "pads_top_bottom_left_right": pads,
                                                  "note": "'same' pads with -inf (TF style, odd pixel bottom/right); "
                                                          "random inputs so no ties; grad goes to the argmax"},
                    "arrays": {"x": blob.add(n + ".x", x), "y": blob.add(n + ".y", y.detach().numpy()),
                               "dy": blob.add(n + ".dy", dy), "dx": blob.add(n + ".dx", xt.grad.numpy())}}

    # avgpool
    for n, shape in {"avgpool_2x2_s2": (2, 3, 6, 6), "avgpool_2x2_s2_odd": (1, 2, 5, 7)}.items():
        x = rng.standard_normal(shape)
        xt = T(x)
        y = F.avg_pool2d(xt, 2, 2)
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        cases[n] = {"op": "avgpool2d", "config": {"kernel": 2, "stride": 2, "pad_mode": "valid",
                                                  "note": "odd trailing row/col dropped (floor)"},
                    "arrays": {"x": blob.add(n + ".x", x), "y": blob.add(n + ".y", y.detach().numpy()),
                               "dy": blob.add(n + ".dy", dy), "dx": blob.add(n + ".dx", xt.grad.numpy())}}

    # batchnorm2d (training)
    bn_results = {}
    for n, (shape, eps) in {"bn_train": ((4, 3, 5, 5), 1e-5), "bn_train_eps1e-4": ((2, 4, 3, 3), 1e-4)}.items():
        C = shape[1]
        x = rng.standard_normal(shape) * 2 + 0.5
        g = 1 + rng.standard_normal(C) * 0.2
        be = rng.standard_normal(C) * 0.2
        mm = rng.standard_normal(C) * 0.1
        mv = 1 + rng.random(C)
        xt, gt, bt = T(x), T(g), T(be)
        mean = xt.mean(dim=(0, 2, 3))
        var_b = xt.var(dim=(0, 2, 3), unbiased=False)
        y = (xt - mean[None, :, None, None]) / torch.sqrt(var_b[None, :, None, None] + eps) * gt[None, :, None, None] \
            + bt[None, :, None, None]
        # cross-check with torch's own op
        rm_t, rv_t = torch.tensor(mm), torch.tensor(mv)
        y2 = F.batch_norm(torch.tensor(x), rm_t, rv_t, torch.tensor(g), torch.tensor(be), training=True,
                          momentum=0.1, eps=eps)
        assert torch.allclose(y.detach(), y2, atol=1e-12)
        m = x.shape[0] * x.shape[2] * x.shape[3]
        bmean = x.mean(axis=(0, 2, 3))
        bvar_b = x.var(axis=(0, 2, 3))
        bvar_u = bvar_b * m / (m - 1)
        new_mm = 0.9 * mm + 0.1 * bmean
        new_mv_unbiased = 0.9 * mv + 0.1 * bvar_u
        new_mv_biased = 0.9 * mv + 0.1 * bvar_b
        assert np.allclose(rv_t.numpy(), new_mv_unbiased) and np.allclose(rm_t.numpy(), new_mm)
        dy = rng.standard_normal(shape)
        y.backward(torch.tensor(dy))
        arr = {k: blob.add(n + "." + k, v) for k, v in {
            "x": x, "gamma": g, "beta": be, "moving_mean": mm, "moving_variance": mv,
            "y": y.detach().numpy(), "batch_mean": bmean, "batch_var_biased": bvar_b, "batch_var_unbiased": bvar_u,
            "new_moving_mean": new_mm, "new_moving_variance": new_mv_unbiased,
            "new_moving_variance_if_biased": new_mv_biased,
            "dy": dy, "dx": xt.grad.numpy(), "dgamma": gt.grad.numpy(), "dbeta": bt.grad.numpy()}.items()}
        cases[n] = {"op": "batchnorm2d_train", "config": {
            "eps": eps, "momentum": 0.9,
            "formula": "y=(x-mean_b)/sqrt(var_b_biased+eps)*gamma+beta; new_moving_mean=0.9*mm+0.1*mean_b; "
                       "new_moving_variance=0.9*mv+0.1*var_b_unbiased (m/(m-1)); torch agrees (momentum 0.1)"},
            "arrays": arr}
        bn_results[n] = (shape, eps, x, g, be, mm, mv, y.detach().numpy(), new_mm, new_mv_unbiased, new_mv_biased)

    # softmax cross entropy (sparse, mean)
    for n, (N, K) in {"softmax_ce_sparse_mean": (4, 10), "softmax_ce_sparse_mean_big": (3, 5)}.items():
        x = rng.standard_normal((N, K)) * 3
        if n.endswith("big"):
            x[0, 0] = 80.0   # exercise the max-subtraction
            x[1, 2] = -90.0
        lab = rng.integers(0, K, N)
        xt = T(x)
        loss = F.cross_entropy(xt, torch.tensor(lab), reduction="mean")
        loss.backward()
        cases[n] = {"op": "softmax_cross_entropy_sparse_mean", "config": {"N": N, "classes": K,
                    "note": "loss = mean_i(logsumexp(x_i) - x_i[label_i]); dlogits = (softmax - onehot)/N"},
                    "arrays": {"logits": blob.add(n + ".logits", x), "labels": blob.add(n + ".labels", lab, "i32"),
                               "loss": blob.add(n + ".loss", np.array(loss.item())),
                               "dlogits": blob.add(n + ".dlogits", xt.grad.numpy())}}

    # dense
    x = rng.standard_normal((3, 6))
    w = rng.standard_normal((5, 6)) * 0.4
    b = rng.standard_normal(5) * 0.1
    xt, wt, bt = T(x), T(w), T(b)
    y = F.linear(xt, wt, bt)
    dy = rng.standard_normal((3, 5))
    y.backward(torch.tensor(dy))
    cases["dense"] = {"op": "dense", "config": {"note": "weight [out,in]; y = x W^T + b"},
                      "arrays": {k: blob.add("dense." + k, v) for k, v in {
                          "x": x, "w": w, "b": b, "y": y.detach().numpy(), "dy": dy, "dx": xt.grad.numpy(),
                          "dw": wt.grad.numpy(), "db": bt.grad.numpy()}.items()}}
    # relu
    x = rng.standard_normal((2, 7))
    x[0, 0] = 0.0
    xt = T(x)
    y = F.relu(xt)
    dy = rng.standard_normal((2, 7))
    y.backward(torch.tensor(dy))
    cases["relu"] = {"op": "relu", "config": {"note": "x[0,0]=0 exactly: grad there is 0 (torch and MindSpore)"},
                     "arrays": {k: blob.add("relu." + k, v) for k, v in {
                         "x": x, "y": y.detach().numpy(), "dy": dy, "dx": xt.grad.numpy()}.items()}}

    meta = {"made_by": "PyTorch %s float64 on CPU (scripts/gen/gen_fixtures.py)" % torch.__version__,
            "layout": "every array is little-endian, C-order (row major), at 'offset' bytes into the blob; "
                      "dtype f64 = IEEE double, i32 = int32",
            "same_padding": "total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0); top/left = total//2, "
                            "bottom/right = total - total//2",
            "cases": cases}
    if ms_ok:
        meta["mindspore_crosscheck"] = in_ms_process("ms_crosscheck", cases, blob, bn_results)
    blob.save("torch_kernels", meta)


def ms_crosscheck(cases, blob, bn_results):
    """Same ops with MindSpore (float32, CPU); max abs diff vs the float64 torch goldens."""
    import mindspore as ms
    import mindspore.nn as nn
    import mindspore.ops as ops
    ms.set_context(mode=ms.PYNATIVE_MODE)
    get = lambda name: np.frombuffer(blob.buf, "<f8", count=blob.arrays[name]["nbytes"] // 8,
                                     offset=blob.arrays[name]["offset"]).reshape(blob.arrays[name]["shape"])
    out = {}
    for n, c in cases.items():
        if c["op"] != "conv2d":
            continue
        cfg = c["config"]
        pad_mode = "same" if cfg["pad"] == "same" else "pad"
        conv = nn.Conv2d(cfg["Cin"], cfg["Cout"], cfg["k"], stride=cfg["stride"], pad_mode=pad_mode,
                         padding=0 if pad_mode == "same" else cfg["pad"], dilation=cfg["dil"], group=cfg["groups"],
                         has_bias=cfg["bias"])
        conv.weight.set_data(ms.Tensor(get(n + ".w").astype(np.float32)))
        if cfg["bias"]:
            conv.bias.set_data(ms.Tensor(get(n + ".b").astype(np.float32)))
        x = ms.Tensor(get(n + ".x").astype(np.float32))
        dy = ms.Tensor(get(n + ".dy").astype(np.float32))
        params = conv.trainable_params()
        y = conv(x)

        def f(xx, *_):
            return ops.ReduceSum()(ops.Mul()(conv(xx), dy))  # Tensor.__mul__ breaks under numpy 2 in MS 2.10
        gx, gp = ms.value_and_grad(f, grad_position=0, weights=params)(x)[1]
        r = {"pad_mode": pad_mode, "y": float(np.abs(y.asnumpy() - get(n + ".y")).max()),
             "dx": float(np.abs(gx.asnumpy() - get(n + ".dx")).max()),
             "dw": float(np.abs(gp[0].asnumpy() - get(n + ".dw")).max())}
        if cfg["bias"]:
            r["db"] = float(np.abs(gp[1].asnumpy() - get(n + ".db")).max())
        out[n] = r
    for n, c in cases.items():
        if c["op"] != "maxpool2d":
            continue
        cfg = c["config"]
        mp = nn.MaxPool2d(cfg["kernel"], cfg["stride"], pad_mode=cfg["pad_mode"])
        x = ms.Tensor(get(n + ".x").astype(np.float32))
        y = mp(x)
        out[n] = {"y": float(np.abs(y.asnumpy() - get(n + ".y")).max()) if y.shape == tuple(get(n + ".y").shape)
                  else "shape mismatch %s vs %s" % (y.shape, get(n + ".y").shape)}
    for n, (shape, eps, x, g, be, mm, mv, y, new_mm, new_mv_u, new_mv_b) in bn_results.items():
        bn = nn.BatchNorm2d(shape[1], eps=eps, momentum=0.9)
        for p, v in ((bn.gamma, g), (bn.beta, be), (bn.moving_mean, mm), (bn.moving_variance, mv)):
            p.set_data(ms.Tensor(v.astype(np.float32)))
        bn.set_train(True)
        ym = bn(ms.Tensor(x.astype(np.float32))).asnumpy()
        mvm = bn.moving_variance.asnumpy().astype(np.float64)
        d_u = float(np.abs(mvm - new_mv_u).max())
        d_b = float(np.abs(mvm - new_mv_b).max())
        out[n] = {"y": float(np.abs(ym - y).max()),
                  "new_moving_mean": float(np.abs(bn.moving_mean.asnumpy() - new_mm).max()),
                  "new_moving_variance_vs_unbiased": d_u, "new_moving_variance_vs_biased": d_b,
                  "mindspore_moving_variance_uses": "unbiased" if d_u < d_b else "biased"}
        note("MindSpore %s nn.BatchNorm2d train (CPU) moving_variance update uses %s batch variance "
             "(|diff| unbiased %.3g, biased %.3g)" % (ms.__version__, out[n]["mindspore_moving_variance_uses"], d_u, d_b))
    out["_note"] = "MindSpore %s, float32, CPU, PyNative; numbers are max |ms - torch_f64|" % ms.__version__
    return out


# ----------------------------------------------------------------------------
# Part C: LeNet5 training oracle (PyTorch), initial weights in a MindSpore ckpt
# ----------------------------------------------------------------------------
LENET_NAMES = ["conv1.weight", "conv2.weight", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
               "fc3.weight", "fc3.bias"]


def gen_lenet(ms_ok):
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(5)
    shapes = {"conv1.weight": (6, 1, 5, 5), "conv2.weight": (16, 6, 5, 5), "fc1.weight": (120, 400),
              "fc1.bias": (120,), "fc2.weight": (84, 120), "fc2.bias": (84,), "fc3.weight": (10, 84),
              "fc3.bias": (10,)}
    init = {}
    for n in LENET_NAMES:
        s = shapes[n]
        fan_in = int(np.prod(s[1:])) if len(s) > 1 else 1
        if len(s) > 1:
            init[n] = (rng.uniform(-1, 1, s) * np.sqrt(3.0 / fan_in)).astype(np.float32)
        else:
            init[n] = (rng.uniform(-1, 1, s) * 0.05).astype(np.float32)
    x = rng.standard_normal((4, 1, 32, 32)).astype(np.float32)
    y = np.array([3, 7, 0, 9], np.int64)
    lr, mom = 0.01, 0.9

    def run(dtype):
        P = {n: torch.tensor(init[n], dtype=dtype, requires_grad=True) for n in LENET_NAMES}
        V = {n: torch.zeros_like(P[n]) for n in LENET_NAMES}
        xt = torch.tensor(x, dtype=dtype)
        losses = []
        for _ in range(3):
            h = F.max_pool2d(F.relu(F.conv2d(xt, P["conv1.weight"])), 2, 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, P["conv2.weight"])), 2, 2)
            h = h.flatten(1)
            h = F.relu(F.linear(h, P["fc1.weight"], P["fc1.bias"]))
            h = F.relu(F.linear(h, P["fc2.weight"], P["fc2.bias"]))
            out = F.linear(h, P["fc3.weight"], P["fc3.bias"])
            loss = F.cross_entropy(out, torch.tensor(y))
            losses.append(loss.item())
            for p in P.values():
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for n in LENET_NAMES:
                    V[n] = mom * V[n] + P[n].grad     # ApplyMomentum: v = u*v + g
                    P[n] -= lr * V[n]                 # p -= lr*v
        return losses, {n: P[n].detach().numpy() for n in LENET_NAMES}

    l64, w64 = run(torch.float64)
    l32, w32 = run(torch.float32)
    final = {}
    for n in LENET_NAMES:
        final[n] = {"shape": list(shapes[n]),
                    "f64_first5": [repr(float(v)) for v in w64[n].ravel()[:5]],
                    "f64_sum": repr(float(w64[n].sum())), "f64_abs_sum": repr(float(np.abs(w64[n]).sum())),
                    "f64_sha256": sha(w64[n].astype("<f8").tobytes()),
                    "f32_first5": [repr(float(v)) for v in w32[n].ravel()[:5]],
                    "f32_sha256": sha(w32[n].astype("<f4").tobytes()),
                    "max_abs_f32_vs_f64": float(np.abs(w32[n].astype(np.float64) - w64[n]).max()),
                    "init_sha256_f32": sha(init[n].astype("<f4").tobytes())}
    blob = Blob()
    blob.add("x", x, "f32")
    blob.add("labels", y, "i32")
    for n in LENET_NAMES:
        blob.add("init." + n, init[n], "f32")
        blob.add("final_f64." + n, w64[n], "f64")
    meta = {"made_by": "PyTorch %s on CPU (scripts/gen/gen_fixtures.py)" % torch.__version__,
            "model": "MindSpore model-zoo LeNet5: conv1 1->6 5x5 valid no bias, ReLU, MaxPool 2/2, conv2 6->16 5x5 "
                     "valid no bias, ReLU, MaxPool 2/2, Flatten, fc1 400->120 ReLU, fc2 120->84 ReLU, fc3 84->10; "
                     "Dense weight [out,in]",
            "loss": "SoftmaxCrossEntropyWithLogits(sparse=True, reduction='mean')",
            "optimizer": {"type": "Momentum (ApplyMomentum: v = u*v + g; p -= lr*v), no weight decay",
                          "lr": lr, "momentum": mom, "steps": 3, "v_init": 0},
            "data": "x float32 [4,1,32,32] and labels int32 [4] in lenet_oracle.bin; same batch every step",
            "init": "lenet_init.ckpt (MindSpore save_checkpoint, Float32) and init.* in lenet_oracle.bin",
            "losses_f64": [repr(v) for v in l64], "losses_f32": [repr(v) for v in l32],
            "loss_note": "loss[i] is the loss BEFORE update i (step 0 = initial weights)",
            "final_weights": final}
    if ms_ok:
        meta["mindspore_crosscheck"] = in_ms_process("lenet_ms", init, x, y, l64, w64)
    blob.save("lenet_oracle", meta)


def lenet_ms(init, x, y, l64, w64):
    import mindspore as ms
    import mindspore.nn as nn

    class LeNet5(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="valid")
            self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
            self.fc1 = nn.Dense(16 * 5 * 5, 120)
            self.fc2 = nn.Dense(120, 84)
            self.fc3 = nn.Dense(84, 10)
            self.relu = nn.ReLU()
            self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
            self.flatten = nn.Flatten()

        def construct(self, x):
            x = self.max_pool2d(self.relu(self.conv1(x)))
            x = self.max_pool2d(self.relu(self.conv2(x)))
            x = self.flatten(x)
            x = self.relu(self.fc1(x))
            x = self.relu(self.fc2(x))
            return self.fc3(x)

    net = LeNet5()
    names = [n for n, _ in net.parameters_and_names()]
    assert names == LENET_NAMES, names
    for n, p in net.parameters_and_names():
        p.set_data(ms.Tensor(init[n]))
    path = os.path.join(OUT, "lenet_init.ckpt")
    rm(path)
    ms.save_checkpoint(net, path)
    fix_perm(path)
    sidecar_ckpt("lenet_init.ckpt", extra={"note": "initial LeNet5 weights of lenet_oracle.json"})
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Momentum(net.trainable_params(), 0.01, 0.9)
    train = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt)
    train.set_train()
    losses = [float(train(ms.Tensor(x), ms.Tensor(y.astype(np.int32))).asnumpy()) for _ in range(3)]
    diffs = {n: float(np.abs(p.asnumpy().astype(np.float64) - w64[n]).max()) for n, p in net.parameters_and_names()}
    return {"_note": "same 3 steps with MindSpore %s nn.Momentum/TrainOneStepCell, float32 CPU" % ms.__version__,
            "losses": [repr(v) for v in losses],
            "max_abs_loss_diff_vs_f64": float(np.max(np.abs(np.array(losses) - np.array(l64)))),
            "max_abs_final_weight_diff_vs_f64": diffs}


# ----------------------------------------------------------------------------
def in_ms_process(func_name, *args):
    """Run a MindSpore function in a fresh interpreter that never imports torch, so the two
    frameworks (and their bundled native libraries) never share a process."""
    import pickle
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        fin, fout = os.path.join(td, "in.pkl"), os.path.join(td, "out.pkl")
        with open(fin, "wb") as f:
            pickle.dump((func_name, args), f)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--out", OUT, "--worker", fin, fout], check=True)
        with open(fout, "rb") as f:
            result, notes = pickle.load(f)
    REPORT["notes"].extend(notes)
    return result


def worker(fin, fout):
    import pickle
    with open(fin, "rb") as f:
        func_name, args = pickle.load(f)
    result = globals()[func_name](*args)
    with open(fout, "wb") as f:
        pickle.dump((result, REPORT["notes"]), f)


def main():
    global OUT
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "..", "spec", "fixtures")))
    ap.add_argument("--no-mindspore", action="store_true", help="skip everything that needs MindSpore")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    OUT = args.out
    if args.worker:
        return worker(*args.worker)
    os.makedirs(OUT, exist_ok=True)
    vers = {"python": sys.version.split()[0], "numpy": np.__version__}
    import torch
    import google.protobuf
    import cryptography
    vers.update(torch=torch.__version__, protobuf=google.protobuf.__version__, cryptography=cryptography.__version__)
    ms_ok = False
    if not args.no_mindspore:
        try:
            import mindspore
            import safetensors
            vers.update(mindspore=mindspore.__version__, safetensors=safetensors.__version__)
            ms_ok = True
        except Exception as ex:
            note("MindSpore not importable: %r" % ex)
    torch.manual_seed(0)
    if ms_ok:
        gen_mindspore()
    gen_torch_kernels(ms_ok)
    gen_lenet(ms_ok)
    REPORT["versions"] = vers
    write_json("versions.json", REPORT)
    print("done:", OUT)


if __name__ == "__main__":
    main()
