import json, sys, numpy as np
for r in sys.argv[1:]:
    L = [json.loads(l) for l in open(f"/work/exp/{r}/metrics.jsonl")]
    g = [l for l in L if l["stage"] == "grpo"]
    s = json.load(open(f"/work/exp/{r}/summary.json")) if __import__("os").path.exists(f"/work/exp/{r}/summary.json") else {}
    print(r, {k: round(v["srcc"], 3) for k, v in s.items()})
    k5 = max(1, len(g) // 5)
    for k in ["reward/format", "reward/regression", "reward/rank", "reward/consistency", "kl", "srcc", "response_length", "entropy", "groups_kept", "clip_fraction", "grad_norm"]:
        if g and k in g[0]:
            print("   %-18s" % k, [round(float(np.mean([x[k] for x in g[i:i + k5]])), 3) for i in range(0, len(g), k5)])
