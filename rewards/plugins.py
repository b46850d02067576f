"""Custom reward components loaded from `module:function` (like TRL / verl reward functions).

A custom component scores a whole batch at once, so it may rank or compare responses:

    def my_component(responses: list[str], mos: np.ndarray, prompt_ids: list, group_size: int,
                     **kw) -> np.ndarray: ...

- `responses`: the N response texts, G consecutive per prompt (originals and perturbed copies alike);
- `mos`: float64 (N,), the MOS of each response's prompt, on the 1-5 scale;
- `prompt_ids`: the N prompt ids; `group_size`: G;
- keyword `variants`: the N variants ("original" / "perturbed"); accept **kw for future keywords.
It returns N finite floats. Use it by giving it a weight: `weights={"mypkg.rewards:length_penalty": 0.1}`;
its values are reported under that name. A wrong shape or a non-finite value raises ValueError naming
the component: a bug in a plugin is loud, never a silent NaN in training.
"""

import importlib
from collections.abc import Callable

import numpy as np


def is_plugin_name(name: str) -> bool:
    return ":" in name


def load_component(spec: str) -> Callable:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"custom reward component must be 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(fn):
        raise ValueError(
            f"custom reward component {spec!r}: {attribute!r} is not a function of {module_name!r}"
        )
    return fn


def custom_component_values(
    spec: str, responses: list[str], mos: np.ndarray, prompt_ids: list, group_size: int, variants: list[str]
) -> np.ndarray:
    values = np.asarray(
        load_component(spec)(responses, mos, prompt_ids, group_size, variants=variants), dtype=np.float64
    )
    if values.shape != (len(responses),):
        raise ValueError(
            f"custom reward component {spec!r} returned shape {values.shape}, expected ({len(responses)},)"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"custom reward component {spec!r} returned non-finite values")
    return values
