"""The embedded demo's stand-in for Q-Ponder's 72B teacher: reasoning written from the KNOWN distortion.

Q-Ponder distils reasoning from a large VLM prompted as an expert. No such model exists offline, so for
the synthetic benchmark (where each item's distortion type and severity are known) this template teacher
writes what an expert would say: what it sees, how strong it is, the quality level, then the score
(the MOS, two decimals). It is clearly a template — it exists to give the cold start a reasoning format
whose stated level agrees with its score, which is what the `q-ponder` consistency reward checks.
"""

from __future__ import annotations

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
# Q-Ponder consistency bands (REWARDS.md): the level the reasoning states must match the score's band.
LEVELS = ((4.2, "excellent"), (3.4, "good"), (2.6, "fair"), (1.8, "poor"), (float("-inf"), "bad"))


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
