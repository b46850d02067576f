"""The embedded demo's stand-in for Q-Ponder's 72B teacher: reasoning written from the KNOWN distortion.

Q-Ponder distils reasoning from a large VLM prompted as an expert. No such model exists offline, so for
the synthetic benchmark (where each item's distortion type and severity are known) this template teacher
writes what an expert would say: what it sees, how strong it is, the quality level, then the score
(two decimals). It is clearly a template — it exists to give the cold start a reasoning format whose
stated level agrees with its score, which is what the `q-ponder` consistency reward checks.

Two teachers. `exact` states the true strength and the MOS: an oracle, which no real teacher is, and
after SFT on it GRPO has nothing left to correct that carries over to unseen pictures (README). The
`misreading` teacher (the demo's) errs the way a VLM judging a downsized whole image does: fine-grained
distortions (noise, JPEG blocks, pixelation, video compression) read one level milder than they are,
global tone changes (darkening, lost contrast) one level stronger. Its words and its score agree with
each other; both are off for those types. The MOS-based GRPO reward is what can correct it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rollout.demo.distortions import synthetic_mos
from rollout.manifest import ManifestFile, write_manifest

# What each synthetic distortion looks like, in the words the model should learn to attend to.
SYMPTOMS = {
    "blur": "soft edges",
    "noise": "visible grain",
    "jpeg": "blocky artifacts",
    "contrast": "washed out colors",
    "downup": "pixelated blocks",
    "darken": "too dark",
    "compression": "smeared blocking",
    "stutter": "frozen frames",
    "frame_drop": "jumpy motion",
}
STRENGTH = {1: "slight", 2: "mild", 3: "moderate", 4: "strong", 5: "severe"}
# Q-Ponder consistency bands (docs/rewards.md): the level the reasoning states must match the score's band.
LEVELS = ((4.2, "excellent"), (3.4, "good"), (2.6, "fair"), (1.8, "poor"), (float("-inf"), "bad"))


# levels by which the misreading teacher shifts each type's strength (types not listed: read right);
# the demo caches its SFT rows under the teacher's name: a changed table needs a new name
MISREAD_LEVELS = {"noise": -1, "jpeg": -1, "downup": -1, "compression": -1, "darken": 1, "contrast": 1}
TEACHERS = ("exact", "misreading")


def quality_level(score: float) -> str:
    return next(word for floor, word in LEVELS if score >= floor)


def template_reasoning(distortion: str | None, severity: int | None, mos: float, media_type: str = "image") -> str:
    """A full R1-format response for one synthetic item: <think>…</think><answer>MOS</answer>."""
    subject = "video" if media_type == "video" else "image"
    if distortion in SYMPTOMS and severity in STRENGTH:
        seen = f"{STRENGTH[severity]} {distortion.replace('_', ' ')}: {SYMPTOMS[distortion]}."
    else:
        seen = f"no clear distortion in the {subject}."
    return f"<think>{seen} The quality is {quality_level(mos)}.</think><answer>{mos:.2f}</answer>"


def teacher_reasoning(teacher: str, distortion: str | None, severity: int | None, mos: float,
                      media_type: str = "image") -> str:
    """The response of the `exact` or `misreading` teacher for one synthetic item."""
    if teacher not in TEACHERS:
        raise ValueError(f"template teacher {teacher!r}: expected one of {TEACHERS}")
    if teacher == "misreading" and distortion in MISREAD_LEVELS and severity in STRENGTH:
        severity = min(5, max(1, severity + MISREAD_LEVELS[distortion]))
        mos = synthetic_mos(distortion, severity)
    return template_reasoning(distortion, severity, mos, media_type)


def template_distill(in_path: str | Path, out_path: str | Path, teacher: str = "misreading") -> dict:
    """SFT rows for a synthetic manifest (`qthink distill --teacher template`). Every row is kept: the
    misreading teacher's error is systematic, a tolerance filter would only drop whole distortion types."""
    manifest, out_dir = ManifestFile(in_path), Path(out_path).resolve().parent
    rows = [dataclasses.replace(manifest.relocated_row(i, out_dir),
                                reasoning=teacher_reasoning(teacher, r.distortion, r.severity, r.mos, r.media_type))
            for i, r in enumerate(manifest.rows)]
    write_manifest(rows, out_path)
    return {"rows": len(rows), "kept": len(rows), "teacher": f"template, {teacher} (synthetic distortion labels)"}
