"""vLLM rollout: prompts, media, manifests, the engine wrapper and the tiny-model builder (no Ray)."""
