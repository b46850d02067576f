import numpy as np
from PIL import Image

from cluster.batches import rollout_batch
from cluster.config import load_config
from rewards import PRESETS
from rollout.manifest import ManifestRow, Sample
from rollout.video import VideoClip


def _samples():
    img = Sample(ManifestRow("i0", "image", 3.0, (1, 5), "d", "train"), Image.new("RGB", (112, 112)))
    frames = (np.arange(8)[:, None, None, None] * np.ones((8, 16, 16, 3))).astype(np.uint8)
    vid = Sample(ManifestRow("v0", "video", 4.0, (1, 5), "d", "train"), VideoClip(frames, {"fps": 4.0}))
    return [img, vid]


def test_videos_get_one_perturbed_copy_when_the_temporal_reward_is_on():
    cfg = load_config()
    plain = rollout_batch(_samples(), 3, False, PRESETS["qthink"], cfg)
    assert [(r.prompt_id, r.variant) for r in plain] == [("i0", "original"), ("v0", "original")]
    with_t = rollout_batch(_samples(), 3, True, PRESETS["qthink"], cfg)
    assert [(r.prompt_id, r.variant) for r in with_t] == [("i0", "original"), ("v0", "original"), ("v0", "perturbed")]
    original, perturbed = with_t[1].frames, with_t[2].frames
    assert perturbed.shape == original.shape
    assert not np.array_equal(perturbed, original)  # every perturbation changes an 8-frame ramp
    again = rollout_batch(_samples(), 3, True, PRESETS["qthink"], cfg)
    assert np.array_equal(again[2].frames, perturbed) and again[0].seed == with_t[0].seed  # deterministic


def test_preset_decides_the_question_and_multiframe_shows_a_grid_plus_local_frames():
    multiframe = load_config(None, ["data.video_view=multiframe"])
    reqs = rollout_batch(_samples(), 0, False, PRESETS["preresq-vqa"], multiframe)
    assert "five aspects" not in reqs[1].question and "two ratings" in reqs[1].question
    assert reqs[1].media_type == "images" and len(reqs[1].frames) == 4  # composite + 3 local frames
    iqa = rollout_batch(_samples(), 0, False, PRESETS["preresq-iqa"], load_config())
    assert "five aspects" in iqa[0].question
    short = rollout_batch(_samples(), 0, False, PRESETS["qthink"], load_config(None, ["data.prompt_style=short"]))
    assert not short[0].system_prompt and len(short[0].question) < 120
