import json
import math
import subprocess
import sys


def test_qthink_reward_scores_a_jsonl_batch_with_every_component(tmp_path):
    rows = [{"prompt_id": p, "mos": mos, "response": f"<think>ok</think><answer>{ans}</answer>", "variant": "original"}
            for p, mos, answers in (("a", 4.0, ("3.90", "2.00")), ("b", 2.0, ("2.10", "4.50"))) for ans in answers]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = subprocess.run([sys.executable, "-m", "cluster.cli", "reward", "--preset", "visualquality-r1", "--in", str(src),
                        "--out", str(dst)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["response"] for o in out] == [r["response"] for r in rows]  # input fields kept, in order
    for o in out:
        assert set(o["rewards"]) == {"format", "rank"}
        assert math.isclose(o["total"], sum(o["rewards"].values()), rel_tol=1e-9)
        assert o["rewards"]["format"] == 1.0
    # the accurate answers (3.90 for MOS 4, 2.10 for MOS 2) rank better than the swapped ones
    assert (out[0]["rewards"]["rank"] > out[1]["rewards"]["rank"]
            and out[2]["rewards"]["rank"] > out[3]["rewards"]["rank"])
