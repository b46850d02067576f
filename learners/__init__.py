"""GRPO-family losses, log-probs for Qwen2.5-VL, DeepSpeed setup and weight export (no Ray)."""
