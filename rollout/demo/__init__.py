"""The embedded demo, fenced off from the pipeline: what `make demo` and CI run on when no model and no
data are given. A tiny Qwen2.5-VL built here (random weights, its vision tower pre-trained on distortion-
ranked pairs as a stand-in for a pretrained VLM), a synthetic distortion benchmark with known MOS, and a
template teacher that writes the SFT reasoning. The pipeline calls `prepare_demo` (prepare.py) once; the
CLI's `make-tiny-model`, `data synth` and `distill --teacher template` run single pieces; nothing else in
the package code imports from here.
"""
