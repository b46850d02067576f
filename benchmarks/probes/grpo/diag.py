import json, sys, re
for p in sys.argv[1:]:
    it = [i for i in json.load(open(p))["items"] if i["id"].startswith(("img", "ms"))]
    ok = sev = 0
    for i in it:
        t = i["id"].split("_")[-1]; d, s = t.rstrip("0123456789"), int(t[len(t.rstrip("0123456789")):])
        m = re.search(r"<think>(\w+) (\w+):", i["response"])
        if m:
            ok += m.group(2) == d
            sev += m.group(2) == d and m.group(1) == {1: "slight", 2: "mild", 3: "moderate", 4: "strong", 5: "severe"}[s]
    print(p.split("/")[-3:], f"type right {ok/len(it):.3f}  type+severity right {sev/len(it):.3f}  n={len(it)}")
