"""GPU probe (not part of qthink): can the tiny Qwen2.5-VL learn held-out quality by SFT with more
compute / fresh data? Plain transformers, teacher-forced CE on template-teacher responses, greedy eval."""
import json, re, sys, time
import numpy as np, torch
from scipy.stats import spearmanr
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
from rollout.distortions import IMAGE_DISTORTIONS, SEVERITIES, distort_image, synthetic_mos
from rollout.prompts import SHORT_QUESTION, quality_messages
from rollout.template_teacher import template_reasoning

name, mode, model_dir, lr, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
batch_size = int(sys.argv[6]) if len(sys.argv) > 6 else 32
EVAL_EVERY = int(sys.argv[7]) if len(sys.argv) > 7 else 1000
torch.manual_seed(0); rng = np.random.default_rng(0); dev = "cuda" if torch.cuda.is_available() else "cpu"
proc = AutoProcessor.from_pretrained(model_dir)
model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=lr)
rows = json.load(open(".probe/data/rows3240.json"))
train_imgs, test_imgs = np.load(".probe/data/train3240.npz"), np.load(".probe/data/test3240.npz")
train = [(train_imgs[r["id"]], r) for r in rows["train"]]
test = [(test_imgs[r["id"]], r) for r in rows["test"]]
pics = list(np.load(".probe/data/pictures.npz").values()) if mode != "fixed" else []
prompt = proc.apply_chat_template(quality_messages("image", SHORT_QUESTION["image"], system=False),
                                  add_generation_prompt=True, tokenize=False)


def crop(p):
    from PIL import Image
    h, w = p.shape[:2]; side = int(min(h, w) * rng.uniform(0.55, 1.0))
    t, l = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    return np.asarray(Image.fromarray(p[t:t + side, l:l + side]).resize((112, 112), Image.Resampling.LANCZOS))


def sample():
    if mode == "fixed":
        idx = rng.integers(len(train), size=batch_size)
        return [(train[i][0], template_reasoning(train[i][1]["distortion"], train[i][1]["severity"], train[i][1]["mos"])) for i in idx]
    out = []
    for _ in range(batch_size):
        d = IMAGE_DISTORTIONS[rng.integers(6)]; s = int(rng.integers(1, 6)); m = synthetic_mos(d, s)
        out.append((distort_image(crop(pics[rng.integers(len(pics))]), d, s, rng), template_reasoning(d, s, m)))
    return out


def step(batch):
    proc.tokenizer.padding_side = "right"
    texts = [prompt + resp + "<|im_end|>" for _, resp in batch]
    enc = proc(text=texts, images=[img for img, _ in batch], return_tensors="pt", padding=True).to(dev)
    plen = len(proc(text=[prompt], images=[batch[0][0]])["input_ids"][0])
    labels = enc["input_ids"].clone(); labels[:, :plen] = -100; labels[enc["attention_mask"] == 0] = -100
    loss = model(**enc, labels=labels).loss
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    return loss.item()


@torch.no_grad()
def evaluate(items):
    proc.tokenizer.padding_side = "left"; preds = []
    for i in range(0, len(items), 64):
        chunk = items[i:i + 64]
        enc = proc(text=[prompt] * len(chunk), images=[img for img, _ in chunk], return_tensors="pt", padding=True).to(dev)
        out = model.generate(**enc, max_new_tokens=40, do_sample=False)
        for seq in proc.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True):
            m = re.search(r"<answer>\s*([0-9.]+)", seq); preds.append(float(m.group(1)) if m else 3.0)
    mos = [r["mos"] for _, r in items]
    return spearmanr(preds, mos)[0]


t0, n, losses = time.time(), 0, []
while time.time() - t0 < seconds:
    losses.append(step(sample())); n += 1
    if n % EVAL_EVERY == 0:
        model.eval(); te = evaluate(test); tr = evaluate(train[:120]); model.train()
        print(f"{name} step {n} loss {np.mean(losses[-200:]):.3f} heldout {te:.3f} train {tr:.3f} {time.time()-t0:.0f}s", flush=True)
model.eval(); print(f"{name} FINAL step {n} heldout {evaluate(test):.3f}", flush=True)
