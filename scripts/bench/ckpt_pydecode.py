#!/usr/bin/python3
"""ckpt_pydecode.py — an independent MindSpore .ckpt decoder (python3-protobuf over a
descriptor built here from the schema in proto/checkpoint.proto; no spore code).

  ckpt_pydecode.py dump FILE OUTDIR   -> OUTDIR/manifest.tsv (idx, tag, type, dims|'-', nbytes,
                                         dims wire: none/unpacked/packed) + OUTDIR/<idx>.bin contents
  ckpt_pydecode.py time FILE RUNS     -> median seconds of a MindSpore-style load
                                         (ParseFromString + numpy.frombuffer(...).copy() per tensor)
Run with Debian's /usr/bin/python3 (python3-protobuf, python3-numpy)."""
import os, statistics, sys, time
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto

def build():
    fd = descriptor_pb2.FileDescriptorProto(name="spore_checkpoint_check.proto", package="sporecheck", syntax="proto2")
    tp = fd.message_type.add(name="TensorProto")
    tp.field.add(name="dims", number=1, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    tp.field.add(name="tensor_type", number=2, type=F.TYPE_STRING, label=F.LABEL_REQUIRED)
    tp.field.add(name="tensor_content", number=3, type=F.TYPE_BYTES, label=F.LABEL_REQUIRED)
    mp = fd.message_type.add(name="MapTensorProto")
    mp.field.add(name="tensor", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".sporecheck.TensorProto")
    ck = fd.message_type.add(name="Checkpoint")
    val = ck.nested_type.add(name="Value")
    val.oneof_decl.add(name="value")
    val.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_REQUIRED)
    val.field.add(name="tensor", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".sporecheck.TensorProto", oneof_index=0)
    val.field.add(name="maptensor", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".sporecheck.MapTensorProto", oneof_index=0)
    ck.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".sporecheck.Checkpoint.Value")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    desc = pool.FindMessageTypeByName("sporecheck.Checkpoint")
    try:
        return message_factory.GetMessageClass(desc)
    except AttributeError:
        return message_factory.MessageFactory(pool).GetPrototype(desc)

def body(path):
    data = open(path, "rb").read()
    if len(data) >= 17 and data[-17:-10] == b"crc_num":
        data = data[:-17]
    return data

def varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7f) << s; s += 7
        if not c & 0x80:
            return r, i

def dims_wire(data):
    """Walk the raw wire format: how each value's dims are encoded."""
    out, i = [], 0
    while i < len(data):
        _, i = varint(data, i); ln, i = varint(data, i); v = data[i:i + ln]; i += ln
        j, kind = 0, "none"
        while j < len(v):
            k, j = varint(v, j)
            if k >> 3 == 2 and k & 7 == 2:
                tl, j = varint(v, j); t = v[j:j + tl]; j += tl; m = 0
                while m < len(t):
                    tk, m = varint(t, m)
                    if tk & 7 == 2:
                        l2, m = varint(t, m)
                        if tk >> 3 == 1: kind = "packed"
                        m += l2
                    elif tk & 7 == 0:
                        _, m = varint(t, m)
                        if tk >> 3 == 1 and kind == "none": kind = "unpacked"
            elif k & 7 == 2:
                l2, j = varint(v, j); j += l2
            elif k & 7 == 0:
                _, j = varint(v, j)
        out.append(kind)
    return out

def dump(path, outdir):
    Ckpt = build()
    data = body(path)
    ck = Ckpt()
    ck.ParseFromString(data)
    wires = dims_wire(data)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "manifest.tsv"), "w") as m:
        for i, v in enumerate(ck.value):
            t = v.tensor
            dims = ",".join(str(d) for d in t.dims) if len(t.dims) else "-"
            m.write("%d\t%s\t%s\t%s\t%d\t%s\n" % (i, v.tag, t.tensor_type, dims, len(t.tensor_content), wires[i]))
            with open(os.path.join(outdir, "%d.bin" % i), "wb") as f:
                f.write(t.tensor_content)

NP = {"Float32": "<f4", "Float16": "<f2", "Float64": "<f8", "Int8": "i1", "UInt8": "u1", "Int16": "<i2",
      "UInt16": "<u2", "Int32": "<i4", "UInt32": "<u4", "Int64": "<i8", "UInt64": "<u8", "Bool": "?", "BFloat16": "<u2"}

def timeit(path, runs):
    import numpy as np
    Ckpt = build()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            data = f.read()
        ck = Ckpt()
        ck.ParseFromString(data)
        out = {}
        for v in ck.value:
            t = v.tensor
            a = np.frombuffer(t.tensor_content, NP[t.tensor_type]).copy()
            out[v.tag] = a.reshape(tuple(t.dims)) if len(t.dims) and a.size == int(np.prod(t.dims)) else a
        ts.append(time.perf_counter() - t0)
        del out, ck, data
    print(statistics.median(ts))

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "time":
        timeit(sys.argv[2], int(sys.argv[3]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
