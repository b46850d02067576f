"""Paired comparison of two evals on the same held-out items: SRCC diff with a bootstrap CI, per distortion type."""
import json, sys, numpy as np
from scipy.stats import spearmanr
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ia = {i["id"]: i for i in a["items"]}; ib = {i["id"]: i for i in b["items"]}
ids = sorted(set(ia) & set(ib))
pa = np.array([ia[i]["pred"] for i in ids]); pb = np.array([ib[i]["pred"] for i in ids]); m = np.array([ia[i]["mos"] for i in ids])
rng = np.random.default_rng(0); d = []
for _ in range(1000):
    k = rng.integers(0, len(ids), len(ids)); d.append(spearmanr(pb[k], m[k])[0] - spearmanr(pa[k], m[k])[0])
print(f"n={len(ids)} A {spearmanr(pa,m)[0]:.3f} B {spearmanr(pb,m)[0]:.3f} diff {spearmanr(pb,m)[0]-spearmanr(pa,m)[0]:+.3f} CI95 [{np.percentile(d,2.5):+.3f}, {np.percentile(d,97.5):+.3f}]")
types = sorted({i.split("_")[2].rstrip("0123456789") for i in ids if i.count("_") >= 2})
for t in types:
    k = np.array([i.split("_")[2].rstrip("0123456789") == t for i in ids])
    print(f"  {t:10s} {k.sum():4d} A {spearmanr(pa[k],m[k])[0]:.3f} B {spearmanr(pb[k],m[k])[0]:.3f}  mean pred A {pa[k].mean():.2f} B {pb[k].mean():.2f} mos {m[k].mean():.2f}")
