#!/usr/bin/env bash
# peers_ab.sh ROUNDS WORKLOADS RUNS [BASE_DIR] — on a shared machine: spore (this tree, and
# optionally a built BASE_DIR worktree), PyPI torch (the bench venv), Debian torch and Debian
# torch with OPENBLAS_CORETYPE=Cooperlake, one after the other within each round, round by
# round, so that load from other jobs hits all alike. Prints per figure each column's median
# of the rounds and every round's value (nn_spore.lua / nn_torch.py medians of RUNS).
set -uo pipefail
cd "$(dirname "$0")/../.."
R=$1; W=$2; RUNS=$3; BASE=${4:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r=1;r<=R;r++)); do
  uptime >> $out/uptime.txt
  luajit scripts/bench/nn_spore.lua $RUNS "$W" | cut -f1,3 >>$out/spore.tsv
  [[ -n "$BASE" ]] && (cd "$BASE" && SPORE_LIB=$PWD/build/libspore.so luajit scripts/bench/nn_spore.lua $RUNS "$W" | cut -f1,3) >>$out/spore_main.tsv
  OPENBLAS_NUM_THREADS=1 "${SPORE_BENCH_VENV:-build/bench-venv}/bin/python" scripts/bench/nn_torch.py $RUNS "$W" 2>/dev/null | grep -v format >>$out/torch_pypi.tsv
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench/nn_torch.py $RUNS "$W" 2>/dev/null | grep -v format >>$out/torch_debian.tsv
  OPENBLAS_CORETYPE=Cooperlake OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench/nn_torch.py $RUNS "$W" 2>/dev/null | grep -v format >>$out/torch_debian_cl.tsv
done
uptime >> $out/uptime.txt
python3 - $out <<'PY'
import sys,os,statistics,collections
d=sys.argv[1]
cols=[c for c in ("spore","spore_main","torch_pypi","torch_debian","torch_debian_cl") if os.path.exists(d+"/"+c+".tsv")]
data={}
for c in cols:
    r=collections.OrderedDict()
    for l in open(d+"/"+c+".tsv"):
        f=l.split()
        if len(f)==2: r.setdefault(f[0],[]).append(float(f[1]))
    data[c]=r
for n in data["spore"]:
    if "ms_per_image" in n: continue
    row=[]
    for c in cols:
        v=data[c].get(n)
        row.append("%s %8.1f %s"%(c,statistics.median(v),[round(x) for x in v]) if v else c+" -")
    print(n+": "+" | ".join(row))
print(open(d+"/uptime.txt").read())
PY
