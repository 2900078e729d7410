"""ckpt_peers.py — the peers' side of bench_ckpt.sh, run by the bench venv's python.
  ckpt_peers.py mkpt TSV OUT         torch.save a float32 state dict with the names and
                                     shapes of TSV (as ckpt_gen_sized.lua wrote them)
  ckpt_peers.py mindspore FILE N     N x mindspore.load_checkpoint(FILE)
  ckpt_peers.py torch FILE N         N x torch.load(FILE)
  ckpt_peers.py torch_mmap FILE N    N x torch.load(FILE, mmap=True)
The loads print "first_seconds median_seconds_of_the_others peak_rss_kb", as
ckpt_load.lua does. Every tensor is materialised: MindSpore's Parameters hold their data;
torch.load(mmap=True) is lazy: it returns tensors over a mapping of the file, whose pages
fault in on first use (not timed here)."""
import resource
import statistics
import sys
import time


def report(times):
    rest = times[1:] or times[:1]
    print(times[0], statistics.median(rest), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def mkpt(tsv, out):
    import torch
    sd = {}
    for line in open(tsv):
        name, dims = line.rstrip("\n").split("\t")
        sd[name] = torch.full([int(d) for d in dims.split(",") if d], 0.01)
    torch.save(sd, out)


def load_ms(path, n):
    import mindspore as ms
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        d = ms.load_checkpoint(path)
        times.append(time.perf_counter() - t0)
        del d
    report(times)


def load_torch(path, n, mmap):
    import torch
    torch.set_num_threads(2)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        d = torch.load(path, mmap=mmap, weights_only=True)
        times.append(time.perf_counter() - t0)
        del d
    report(times)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "mkpt":
        mkpt(sys.argv[2], sys.argv[3])
    elif cmd == "mindspore":
        load_ms(sys.argv[2], int(sys.argv[3]))
    elif cmd == "torch":
        load_torch(sys.argv[2], int(sys.argv[3]), False)
    elif cmd == "torch_mmap":
        load_torch(sys.argv[2], int(sys.argv[3]), True)
    else:
        sys.exit("ckpt_peers.py: unknown command " + cmd)
