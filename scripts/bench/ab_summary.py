"""ab_summary.py A.tsv B.tsv NAME_A NAME_B [LABEL_A LABEL_B] — medians of two alternating
series of nn_spore.lua lines ("name<TAB>unit<TAB>value<TAB>runs", one line per figure per
round), one JSON line per figure: {name, unit, NAME_A, NAME_B, ratio, rounds, runs} as used by
compare_commits.sh (this/base) and lib_ab.sh (a/b). ratio is NAME_A over NAME_B."""
import json, statistics, sys


def load(p):
    d, u, order = {}, {}, []
    for line in open(p):
        name, unit, value, _ = line.rstrip("\n").split("\t")
        if name not in d:
            order.append(name)
        d.setdefault(name, []).append(float(value))
        u[name] = unit
    return d, u, order


a, units, order = load(sys.argv[1])
b, _, _ = load(sys.argv[2])
na, nb = sys.argv[3], sys.argv[4]
extra = dict(arg.split("=", 1) for arg in sys.argv[5:])
for n in order:
    ma, mb = statistics.median(a[n]), statistics.median(b.get(n, [float("nan")]))
    row = {"name": n, "unit": units[n], na: round(ma, 3), nb: round(mb, 3), "ratio": round(ma / mb, 3),
           "rounds": len(a[n]), na + "_runs": [round(v, 1) for v in a[n]], nb + "_runs": [round(v, 1) for v in b.get(n, [])]}
    row.update(extra)
    print(json.dumps(row))
