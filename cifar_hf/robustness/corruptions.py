"""CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019) as batched torch functions on uint8 NHWC images.

Parameters are those of hendrycks/robustness `make_cifar_c.py` for 32x32 images. The reference needs ImageMagick,
OpenCV, scikit-image and six frost photographs; here each corruption is torch (or PIL where the reference uses PIL)
and the ones the reference draws with those tools are re-derived from their definition (see docs/robustness.md for
each difference). The `imagecorruptions` package is not used: it imports `pkg_resources`, gone from setuptools>=81,
and its parameters are ImageNet's (224 px), far too strong for 32 px images.
"""

import io
import math
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UsageError

SEVERITIES = (1, 2, 3, 4, 5)


def _gaussian_kernel1d(sigma: float, radius: int | None = None) -> torch.Tensor:
    radius = max(1, int(4 * sigma + 0.5)) if radius is None else radius  # scikit-image's truncate=4
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Same-size depthwise 2-D filtering of NCHW floats with reflect borders (cv2's default BORDER_REFLECT_101)."""
    kh, kw = kernel.shape
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    weight = kernel.to(x)[None, None].expand(x.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=x.shape[1])


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = _gaussian_kernel1d(sigma)
    return _filter(_filter(x, k[None, :]), k[:, None])


def _line_kernels(radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick's MotionBlurImage: one-sided Gaussian weights along a line at `angle`; (N, K, K) kernels."""
    length = int(radius)
    steps = torch.arange(length, dtype=torch.float32)
    weights = torch.exp(-0.5 * (steps / sigma) ** 2)
    weights = weights / weights.sum()
    size = 2 * length + 1
    kernels = torch.zeros(len(angles_deg), size, size)
    theta = torch.deg2rad(angles_deg)[:, None]
    rows = (length + torch.round(steps[None] * torch.sin(theta))).long()
    cols = (length + torch.round(steps[None] * torch.cos(theta))).long()
    batch = torch.arange(len(angles_deg))[:, None].expand_as(rows)
    kernels.index_put_((batch, rows, cols), weights[None].expand_as(rows), accumulate=True)
    return kernels


def _per_image_filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each image of NCHW `x` filtered with its own (K, K) kernel (reflect borders)."""
    n, c, h, w = x.shape
    k = kernels.shape[-1]
    padded = F.pad(x.reshape(1, n * c, h, w), (k // 2,) * 4, mode="reflect")
    weight = kernels.to(x).repeat_interleave(c, dim=0)[:, None]
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def _zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The reference's `clipped_zoom`: crop the centre, enlarge it as scipy.ndimage.zoom(order=1) does (output size
    rounded, corners aligned), and trim back to the original size."""
    h = x.shape[-1]
    crop = int(math.ceil(h / factor))
    top = (h - crop) // 2
    size = round(crop * factor)
    zoomed = F.interpolate(x[..., top: top + crop, top: top + crop], size=(size, size), mode="bilinear",
                           align_corners=True)
    trim = (size - h) // 2
    return zoomed[..., trim: trim + h, trim: trim + h]


def _plasma_fractal(n: int, size: int, decay: float, gen: torch.Generator) -> torch.Tensor:
    """Diamond-square height maps in [0, 1], (N, size, size), as in the reference's `plasma_fractal`."""
    maps = torch.zeros(n, size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled_mean(array):
        return array / 4 + wibble * (torch.rand(array.shape, generator=gen, dtype=torch.float64) * 2 - 1) * wibble

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        squares = corners + corners.roll(-1, 1)
        squares = squares + squares.roll(-1, 2)
        maps[:, half:size:step, half:size:step] = wibbled_mean(squares)
        dr = maps[:, half:size:step, half:size:step]
        ul = maps[:, 0:size:step, 0:size:step]
        maps[:, 0:size:step, half:size:step] = wibbled_mean(dr + dr.roll(1, 1) + ul + ul.roll(-1, 2))
        maps[:, half:size:step, 0:size:step] = wibbled_mean(dr + dr.roll(1, 2) + ul + ul.roll(-1, 1))
        step //= 2
        wibble /= decay
    maps -= maps.amin((1, 2), keepdim=True)
    return (maps / maps.amax((1, 2), keepdim=True)).float()


# Each function takes NCHW floats in [0, 1], a severity's parameters and a generator, and returns NCHW floats.

def gaussian_noise(x, c, gen):
    return x + torch.randn(x.shape, generator=gen) * c


def shot_noise(x, c, gen):
    return torch.poisson(x * c, generator=gen) / c


def impulse_noise(x, c, gen):
    # scikit-image 's&p': a share `c` of the values, half set to 0 and half to 1
    hit = torch.rand(x.shape, generator=gen) < c
    salt = torch.rand(x.shape, generator=gen) < 0.5
    return torch.where(hit, salt.float(), x)


def defocus_blur(x, c, gen):
    radius, alias_blur = c
    axis = torch.arange(-8, 9, dtype=torch.float32)
    disk = ((axis[None] ** 2 + axis[:, None] ** 2) <= radius**2).float()
    disk = disk / disk.sum()
    disk = _filter(disk[None, None], torch.outer(*(2 * (_gaussian_kernel1d(alias_blur, 1),))))[0, 0]  # cv2 3x3 blur
    return _filter(x, disk)


def glass_blur(x, c, gen):
    sigma, delta, iterations = c
    x = _gaussian_blur(x, sigma)
    n, _, h, w = x.shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    flat = x.flatten(2)
    for _ in range(iterations):
        # the reference swaps each pixel with a neighbour up to `delta` away; a random local gather does the same job
        dy = torch.randint(-delta, delta, (n, h, w), generator=gen)
        dx = torch.randint(-delta, delta, (n, h, w), generator=gen)
        source = (rows + dy).clamp(0, h - 1) * w + (cols + dx).clamp(0, w - 1)
        flat = flat.gather(2, source.flatten(1)[:, None].expand(-1, flat.shape[1], -1))
    return _gaussian_blur(flat.reshape(x.shape), sigma)


def motion_blur(x, c, gen):
    radius, sigma = c
    angles = torch.rand(len(x), generator=gen) * 90 - 45
    return _per_image_filter(x, _line_kernels(radius, sigma, angles))


def zoom_blur(x, c, gen):
    factors = np.arange(1, c, 0.01)
    return (x + sum(_zoom(x, float(f)) for f in factors)) / (len(factors) + 1)


def snow(x, c, gen):
    loc, scale, zoom, threshold, radius, sigma, mix = c
    n, _, h, w = x.shape
    layer = (torch.randn(n, 1, h, w, generator=gen) * scale + loc)
    layer = _zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    angles = torch.rand(n, generator=gen) * 90 - 135
    layer = _per_image_filter(layer, _line_kernels(radius, sigma, angles))
    grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # cv2 RGB2GRAY weights
    x = mix * x + (1 - mix) * torch.maximum(x, grey * 1.5 + 0.5)
    return x + layer + layer.flip(-1, -2)


def frost(x, c, gen):
    # The reference blends crops of six frost photographs; lacking them, an ice texture from a plasma fractal
    # sharpened into crystal-like ridges stands in, with the reference's blend weights.
    image_weight, frost_weight = c
    n, _, h, w = x.shape
    size = 1 << max(h, w - 1).bit_length()
    texture = _plasma_fractal(n, size, 1.5, gen)[:, :h, :w]
    ridges = (1 - (texture - 0.5).abs() * 2) ** 3
    ice = torch.stack([ridges * 0.85, ridges * 0.93, ridges], 1)  # pale blue-white, as the photographs are
    return image_weight * x + frost_weight * ice


def fog(x, c, gen):
    strength, decay = c
    n, _, h, w = x.shape
    size = 1 << max(h, w - 1).bit_length()
    peak = x.amax((1, 2, 3), keepdim=True)
    x = x + strength * _plasma_fractal(n, size, decay, gen)[:, None, :h, :w]
    return x * peak / (peak + strength)


def brightness(x, c, gen):
    # HSV value + c with hue and saturation kept: every channel scales by new value / old value
    value = x.amax(1, keepdim=True)
    brighter = (value + c).clamp(max=1)
    return torch.where(value > 0, x * brighter / value.clamp(min=1e-12), brighter.expand_as(x))


def contrast(x, c, gen):
    means = x.mean((2, 3), keepdim=True)
    return (x - means) * c + means


def elastic_transform(x, c, gen):
    alpha, sigma, affine = c
    n, _, h, w = x.shape
    # random affine of three points around the centre, as the reference's cv2.getAffineTransform
    centre, square = torch.tensor([w // 2, h // 2], dtype=torch.float32), min(h, w) // 3
    pts1 = torch.stack([centre + square, centre + torch.tensor([square, -square]), centre - square])
    pts2 = pts1 + (torch.rand((n, 3, 2), generator=gen) * 2 - 1) * affine
    ones = torch.ones(n, 3, 1)
    forward = torch.linalg.solve(torch.cat([pts1.expand(n, 3, 2), ones], 2), pts2).transpose(1, 2)  # (n, 2, 3)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    square_m = torch.cat([forward, torch.tensor([0.0, 0, 1]).expand(n, 1, 3)], 1)
    inverse = torch.linalg.inv(square_m)[:, :2]  # warpAffine samples the source at M^-1 (destination)
    points = torch.stack([cols, rows, torch.ones_like(rows)], -1).reshape(-1, 3)
    source = torch.einsum("nij,pj->npi", inverse, points).reshape(n, h, w, 2)
    # smooth random displacement fields, scaled by alpha (pixels)
    noise = torch.rand((n, 2, h, w), generator=gen) * 2 - 1
    displacement = (_gaussian_blur(noise, sigma) * alpha) if alpha > 0 else torch.zeros_like(noise)
    source = source + displacement.permute(0, 2, 3, 1)
    grid = torch.stack([(source[..., 0] + 0.5) / w * 2 - 1, (source[..., 1] + 0.5) / h * 2 - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _per_pil_image(x: torch.Tensor, change) -> torch.Tensor:
    pixels = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([np.asarray(change(Image.fromarray(p)).convert("RGB")) for p in pixels])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255


def pixelate(x, c, gen):
    h, w = x.shape[-2:]
    return _per_pil_image(x, lambda im: im.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX))


def jpeg_compression(x, c, gen):
    def compress(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=c)
        return Image.open(buffer)

    return _per_pil_image(x, compress)


# name -> (family, function, parameters at severities 1..5), in the order of the CIFAR-10-C release
CORRUPTIONS = {
    "gaussian_noise": ("noise", gaussian_noise, [0.04, 0.06, 0.08, 0.09, 0.10]),
    "shot_noise": ("noise", shot_noise, [500, 250, 100, 75, 50]),
    "impulse_noise": ("noise", impulse_noise, [0.01, 0.02, 0.03, 0.05, 0.07]),
    "defocus_blur": ("blur", defocus_blur, [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]),
    "glass_blur": ("blur", glass_blur, [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]),
    "motion_blur": ("blur", motion_blur, [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]),
    "zoom_blur": ("blur", zoom_blur, [1.06, 1.11, 1.16, 1.21, 1.26]),
    "snow": ("weather", snow, [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                               (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                               (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]),
    "frost": ("weather", frost, [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]),
    "fog": ("weather", fog, [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]),
    "brightness": ("digital", brightness, [0.05, 0.1, 0.15, 0.2, 0.3]),
    "contrast": ("digital", contrast, [0.75, 0.5, 0.4, 0.3, 0.15]),
    "elastic_transform": ("digital", elastic_transform, [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                                                         (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]),
    "pixelate": ("digital", pixelate, [0.95, 0.9, 0.85, 0.75, 0.65]),
    "jpeg_compression": ("digital", jpeg_compression, [80, 65, 58, 50, 40]),
}
FAMILIES = {name: family for name, (family, _, _) in CORRUPTIONS.items()}
SCALED_BY_IMAGE_SIZE = {"elastic_transform"}  # the reference gives these in units of the 32 px side


def parse_corruptions(value: str) -> list[str]:
    names = list(CORRUPTIONS) if value.strip() == "all" else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        what = f"unknown {', '.join(unknown)}" if unknown else "no corruption named"
        raise UsageError(f"--corruptions: {what}; use 'all' or some of {', '.join(CORRUPTIONS)}")
    return list(dict.fromkeys(names))  # each scored once, in the order given


def parse_severities(value: str) -> list[int]:
    try:
        severities = sorted({int(s) for s in value.split(",") if s.strip()})
    except ValueError:
        severities = []
    if not severities or any(s not in SEVERITIES for s in severities):
        raise UsageError(f"--severities: '{value}' is not a comma-separated list of 1..5")
    return severities


def corruption_seed(name: str, severity: int, seed: int) -> int:
    return zlib.crc32(f"{name}/{severity}/{seed}".encode())  # stable across processes, unlike hash()


def corrupt(pixels: np.ndarray, name: str, severity: int, seed: int = 0, chunk: int = 1024) -> np.ndarray:
    """`pixels` (N, H, W, 3) uint8 corrupted by `name` at `severity`; the same seed gives the same images."""
    _, function, levels = CORRUPTIONS[name]
    c = levels[severity - 1]
    if name in SCALED_BY_IMAGE_SIZE:
        c = tuple(v * min(pixels.shape[1:3]) for v in c)
    gen = torch.Generator().manual_seed(corruption_seed(name, severity, seed))
    out = np.empty_like(pixels)
    for start in range(0, len(pixels), chunk):
        x = torch.from_numpy(np.array(pixels[start: start + chunk])).permute(0, 3, 1, 2).float() / 255
        y = function(x, c, gen).clamp(0, 1)
        out[start: start + chunk] = (y * 255).byte().permute(0, 2, 3, 1).numpy()  # truncated, as np.uint8 does
    return out

