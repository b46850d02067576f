import json, sys, numpy as np
from scipy.stats import spearmanr
for p in sys.argv[1:]:
    it = [i for i in json.load(open(p))["items"] if i["id"].startswith("img")]
    pics = sorted({i["id"].split("_")[1] for i in it})
    out = []
    for pic in pics:
        s = [i for i in it if i["id"].split("_")[1] == pic]
        out.append((pic, len(s), round(spearmanr([i["pred"] for i in s], [i["mos"] for i in s])[0], 3), round(np.mean([i["pred"] for i in s]) - np.mean([i["mos"] for i in s]), 2)))
    print(p.split("/")[-3:], "within-pic mean %.3f" % np.mean([o[2] for o in out]), out)
