"""Prompt texts and chat messages for quality judging, as the papers' official training code writes them.

The system prompt and questions (each preset's in docs/rewards.md): the R1-style system prompt and the
VisualQuality-R1 / VQAThinker question; PreResQ-R1 asks for five aspect ratings (IQA) or two numbers (VQA).
Messages use the Qwen2-VL content-list format so one chat template serves images and videos.
"""

from __future__ import annotations

R1_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think><answer> answer here "
    "</answer>"
)

_RATING = (
    "The rating should be a float between 1 and 5, rounded to two decimal places, with 1 representing "
    "very poor quality and 5 representing excellent quality."
)
_TAGS = (
    "First output the thinking process in <think> </think> tags and then output the final answer with "
    "only one score in <answer> </answer> tags."
)
QUALITY_QUESTION = {
    "image": "You are doing the image quality assessment task. Here is the question: What is your overall "
    f"rating on the quality of this picture? {_RATING} {_TAGS}",
    "video": "You are doing the video quality assessment task. Here is the question: What is your overall "
    f"rating on the quality of this video? {_RATING} {_TAGS}",
}

PRERESQ_ASPECTS = ("saturation", "granularity", "sharpness", "foreground", "background")
PRERESQ_IQA_QUESTION = (
    "You are doing the image quality assessment task. Rate the quality of this picture on five aspects: "
    + ", ".join(PRERESQ_ASPECTS)
    + ". Each rating is a float between 1 and 5 with two decimals, 1 very poor and 5 excellent. First "
    "output the thinking process in <think> </think> tags, then the five ratings in <answer> </answer> "
    "tags, one per line."
)
PRERESQ_VQA_QUESTION = (
    "You are doing the video quality assessment task. The first picture tiles frames of the whole video; "
    "the others are single frames. Rate the spatial quality and the temporal quality of this video, each "
    "a float between 1 and 5 with two decimals. First output the thinking process in <think> </think> "
    "tags, then the two ratings in <answer> </answer> tags, one per line."
)


def quality_messages(media_type: str, question: str | None = None, num_images: int = 1,
                     system: bool = True) -> list[dict]:
    """Chat messages for one judged item: (R1 system prompt) + media placeholder(s) + question."""
    if media_type not in ("image", "video"):
        raise ValueError(f"media_type must be 'image' or 'video', got {media_type!r}")
    media = [{"type": media_type}] if media_type == "video" else [{"type": "image"}] * num_images
    user = {"role": "user", "content": media + [{"type": "text", "text": question or QUALITY_QUESTION[media_type]}]}
    if not system:
        return [user]
    return [{"role": "system", "content": [{"type": "text", "text": R1_SYSTEM_PROMPT}]}, user]

# Q-Ponder's distillation asks the teacher to reason like an expert before it scores (cold-start data).
EXPERT_PREAMBLE = {
    media: f"You are an expert in {media} quality assessment. Examine the {media} for sharpness, noise, "
    "compression artifacts, exposure, contrast, color" + (", and temporal stability (stutter, dropped or frozen "
    "frames)" if media == "video" else "") + ". Describe each visible distortion and how severe it is, then "
    "state the overall quality level (excellent, good, fair, poor or bad)."
    for media in ("image", "video")
}


def expert_question(question: str, media_type: str) -> str:
    """The distillation teacher's prompt: the expert preamble, then the question the preset's parser expects
    (so a PreResQ teacher answers with aspect ratings). `media_type` is the item's: a video shown as
    pictures (PreResQ-R1's multi-frame view) is still a video."""
    return f"{EXPERT_PREAMBLE[media_type]} {question}"


Q_INSIGHT_QUESTION = {
    media: f"What is your overall rating on the quality of this {noun}? The rating should be a float between 1 "
    "and 5, rounded to two decimal places. First output the thinking process in <think> </think> tags, then the "
    'answer in <answer> </answer> tags as JSON: {"rating": score}.'
    for media, noun in (("image", "picture"), ("video", "video"))
}


# `prompt_style: short`: no system prompt and a one-line question. A randomly initialised tiny model
# (the CPU demo) must find 16 image tokens among ~190 prompt tokens with 2 attention heads; with ~20 it
# learns to look at the picture far sooner. Real checkpoints use the papers' prompts ("paper").
SHORT_QUESTION = {
    "image": "Rate the quality of this image from 1 to 5. <think> reasoning </think><answer> score </answer>",
    "video": "Rate the quality of this video from 1 to 5. <think> reasoning </think><answer> score </answer>",
}
