"""Camera images: decoding ROS image payloads and THE policy preprocessing (crop + resize).

`preprocess_image` is the one function that turns a camera frame into a policy
observation. camera_node calls it live and the bag converter calls it offline, so the
pixels a policy is trained on are bit-identical to the pixels it sees when deployed.

Decoders take the fields of a sensor_msgs/Image (raw bytes, width, height, step,
encoding) or a sensor_msgs/CompressedImage (bytes, format) and return RGB uint8
[H, W, 3]. This module imports numpy and Pillow only; no ROS, no OpenCV.
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import Sequence

import numpy as np

# encoding -> (channels, order of R, G, B in the pixel); mono8 replicates its one channel.
RAW_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}

Crop = tuple[int, int, int, int]


def decode_raw(data: bytes | bytearray | memoryview | np.ndarray, width: int, height: int,
               step: int, encoding: str) -> np.ndarray:
    """Decode a sensor_msgs/Image payload to RGB uint8 [height, width, 3].

    The result is a read-only view of ``data`` where possible (no copy of the frame).

    Raises ValueError naming the encoding when it is unsupported or when the byte count
    does not match width/height/step.
    """
    enc = str(encoding).lower()
    if enc not in RAW_ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {', '.join(RAW_ENCODINGS)}")
    channels, order = RAW_ENCODINGS[enc]
    width, height, step = int(width), int(height), int(step)
    if width <= 0 or height <= 0:
        raise ValueError(f"{enc} image has an empty size {width}x{height}")
    row_bytes = width * channels
    if step < row_bytes:
        raise ValueError(f"{enc} image: step {step} is smaller than width*channels = {row_bytes}")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if buf.size < step * (height - 1) + row_bytes:
        raise ValueError(f"{enc} image: {buf.size} bytes for {width}x{height} with step {step} "
                         f"(need {step * height})")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1), writeable=False)
    pixels = rows.reshape(height, width, channels)
    # Views, not copies: channel order and alpha are resolved by slicing; the crop in
    # preprocess_image then copies only the pixels it keeps.
    if enc in ("rgb8", "rgba8"):
        return pixels[:, :, :3]
    if enc in ("bgr8", "bgra8"):
        return pixels[:, :, 2::-1]
    return np.broadcast_to(pixels, (height, width, 3))


def encode_raw(image: np.ndarray) -> tuple[bytes, int, int, int, str]:
    """RGB uint8 [H, W, 3] -> (data, width, height, step, "rgb8") for a sensor_msgs/Image."""
    image = np.ascontiguousarray(check_rgb(image))
    h, w, _ = image.shape
    return image.tobytes(), w, h, w * 3, "rgb8"


# Pillow modes of images that are not camera colour: 16-bit / 32-bit integer and float
# (depth maps, e.g. RealSense aligned_depth_to_color as 16-bit PNG).
NON_COLOUR_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _open_colour(data, fmt: str):
    """Pillow image of a CompressedImage payload; a depth map (``compressedDepth``, 16-bit or
    float pixels) is a ValueError: it is not a colour image."""
    from PIL import Image

    if "compresseddepth" in str(fmt).lower().replace(" ", ""):
        raise ValueError(f"compressed image format {fmt!r} is a depth map, not a colour image")
    im = Image.open(io.BytesIO(data))
    if im.mode in NON_COLOUR_MODES:
        im.close()
        raise ValueError(f"{im.format} image of mode {im.mode} (16-bit or float: a depth map?) is not a colour image")
    return im


def decode_compressed(data: bytes | bytearray | memoryview, fmt: str = "",
                      scale: int = 1) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) to RGB uint8 [H, W, 3].

    ``fmt`` is the message's format field ("jpeg", "png", "bgr8; jpeg compressed bgr8", ...);
    the file itself says how it is coded, so it is only used in error messages.
    ``scale`` 2, 4 or 8 decodes a JPEG at 1/scale of its size in the DCT (libjpeg's scaled
    decoding: several times faster, an 8x8-block average in place of full pixels); other
    formats ignore it. A depth map (16-bit or float PNG, ``compressedDepth``) is refused: it
    is not a colour image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _open_colour(data, fmt) as im:
            if scale > 1 and im.format == "JPEG":
                w, h = im.size
                im.draft("RGB", (-(-w // scale), -(-h // scale)))
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot decode compressed image (format {fmt!r}, {len(data)} bytes): {exc}") from exc
    except ValueError as exc:
        if "colour image" in str(exc):
            raise
        raise ValueError(f"cannot decode compressed image (format {fmt!r}, {len(data)} bytes): {exc}") from exc


def encode_compressed(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """RGB uint8 [H, W, 3] -> JPEG or PNG bytes (for CompressedImage messages and tests)."""
    from PIL import Image

    fmt = fmt.lower()
    if fmt not in ("jpeg", "jpg", "png"):
        raise ValueError(f"unsupported compressed format {fmt!r}; use jpeg or png")
    out = io.BytesIO()
    pil_format = "JPEG" if fmt in ("jpeg", "jpg") else "PNG"
    Image.fromarray(check_rgb(image)).save(out, format=pil_format, **({"quality": quality} if pil_format == "JPEG" else {}))
    return out.getvalue()


def load_image_file(path: str) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) as RGB uint8 [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image: {exc}") from exc


def check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    return image


@lru_cache(maxsize=64)
def _resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Resampling taps for one axis: (indices [n_out, K], weights [n_out, K] float32).

    Shrinking averages the exact area of the input pixels under each output pixel
    (anti-aliased); enlarging interpolates bilinearly between pixel centres. Each output
    pixel reads only K neighbouring inputs, so resampling costs O(K) per output pixel.
    """
    rows: list[list[tuple[int, float]]] = []
    if n_out <= n_in:
        scale = n_in / n_out
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            taps = [(j, min(hi, j + 1) - max(lo, j)) for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in))]
            total = sum(wt for _, wt in taps)
            rows.append([(j, wt / total) for j, wt in taps if wt > 0])
    else:
        for i in range(n_out):
            c = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
            left = int(np.floor(c))
            right = min(left + 1, n_in - 1)
            rows.append([(left, 1.0 - (c - left)), (right, c - left)])
    k = max(len(r) for r in rows)
    idx = np.zeros((n_out, k), dtype=np.intp)
    wts = np.zeros((n_out, k), dtype=np.float32)
    for i, taps in enumerate(rows):
        for t, (j, wt) in enumerate(taps):
            idx[i, t], wts[i, t] = j, wt
        idx[i, len(taps):] = taps[-1][0]  # padding taps carry weight 0
    return idx, wts


def _resample_axis(img: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    idx, wts = _resize_taps(img.shape[axis], n_out)
    out = None
    for t in range(idx.shape[1]):
        if axis == 0:
            term = img[idx[:, t]] * wts[:, t, None, None]
        else:
            term = img[:, idx[:, t]] * wts[None, :, t, None]
        out = term if out is None else out + term
    return out


def resize(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize uint8 [H, W, C] to size=(H', W'): area average when shrinking, bilinear when enlarging."""
    h_out, w_out = int(size[0]), int(size[1])
    h, w, c = image.shape
    if (h, w) == (h_out, w_out):
        return np.array(image, copy=True)  # an owned, writable, contiguous frame
    if h % h_out == 0 and w % w_out == 0 and (h // h_out) * (w // w_out) <= 256:
        image = np.ascontiguousarray(image)  # copies only views (crop, channel order)
        # Whole-pixel blocks (the common 480x480 -> 48x48 case): exact integer box average,
        # summing rows first (contiguous, fast) and then columns.
        fy, fx = h // h_out, w // w_out
        rows = image.reshape(h_out, fy, w * c).sum(axis=1, dtype=np.uint16)
        sums = rows.reshape(h_out, w_out, fx, c).sum(axis=2, dtype=np.uint32)
        n = fy * fx
        return ((sums + n // 2) // n).astype(np.uint8)
    img = image.astype(np.float32)
    # Resample the axis that shrinks the most first so the second pass touches fewer pixels.
    if h_out / h <= w_out / w:
        out = _resample_axis(_resample_axis(img, h_out, 0), w_out, 1)
    else:
        out = _resample_axis(_resample_axis(img, w_out, 1), h_out, 0)
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def normalize_crop(crop: Sequence[int] | None, width: int, height: int) -> Crop | None:
    """Validate a crop (x0, y0, x1, y1) in pixels; an empty sequence or None means no crop."""
    if crop is None or len(crop) == 0:
        return None
    if len(crop) != 4:
        raise ValueError(f"crop must be (x0, y0, x1, y1), got {list(crop)}")
    x0, y0, x1, y1 = (int(v) for v in crop)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"crop {(x0, y0, x1, y1)} does not fit in a {width}x{height} image")
    return x0, y0, x1, y1


def preprocess_image(image: np.ndarray, crop: Sequence[int] | None = None,
                     size: Sequence[int] = (48, 48)) -> np.ndarray:
    """THE observation pipeline: crop (x0, y0, x1, y1) then resize to size=(H, W); uint8 RGB out."""
    image = check_rgb(image)
    h, w, _ = image.shape
    box = normalize_crop(crop, w, h)
    if box is not None:
        x0, y0, x1, y1 = box
        image = image[y0:y1, x0:x1]
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (H, W) with positive entries, got {list(size)}")
    if image.strides[2] < 0:
        # BGR views: resampling is per channel, so resize the BGR pixels in memory order
        # and flip the channels of the small result (same numbers, no full-frame copy).
        return np.ascontiguousarray(resize(image[:, :, ::-1], size)[:, :, ::-1])
    return resize(image, size)


def jpeg_scale(width: int, height: int, crop: Sequence[int] | None, size: Sequence[int]) -> int:
    """The DCT scale (8, 4, 2 or 1) a JPEG of ``width`` x ``height`` can be decoded at for
    `preprocess_compressed`: the largest that keeps the crop on whole pixels of the scaled
    image and at least 2 scaled pixels per output pixel in each direction."""
    box = normalize_crop(crop, width, height) or (0, 0, width, height)
    for s in (8, 4, 2):
        if width % s or height % s or any(v % s for v in box):
            continue
        if (box[2] - box[0]) // s >= 2 * int(size[1]) and (box[3] - box[1]) // s >= 2 * int(size[0]):
            return s
    return 1


def preprocess_compressed(data: bytes | bytearray | memoryview, fmt: str = "", crop: Sequence[int] | None = None,
                          size: Sequence[int] = (48, 48), fast: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """A CompressedImage straight to a policy observation: (uint8 RGB [H, W, 3], the
    frame's (height, width)).

    ``fast`` decodes a JPEG at the reduced scale `jpeg_scale` picks (libjpeg's DCT scaling,
    several times faster than a full decode), with the crop scaled alike, then resizes as
    `preprocess_image` does. The DCT-scaled pixels are 2x2..8x8 block averages of the full
    frame, so the observation differs from the full-decode path by JPEG-error amounts
    (bench/convert_speed.py measures it); ``fast=False`` is exactly ``preprocess_image``
    of the full decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _open_colour(data, fmt) as im:
            width, height = im.size
            scale = jpeg_scale(width, height, crop, size) if fast and im.format == "JPEG" else 1
            if scale > 1:
                im.draft("RGB", (width // scale, height // scale))
                if im.size != (width // scale, height // scale):
                    scale = 1
                    im = Image.open(io.BytesIO(data))
            pixels = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot decode compressed image (format {fmt!r}, {len(data)} bytes): {exc}") from exc
    box = normalize_crop(crop, width, height)
    if box is not None and scale > 1:
        box = tuple(v // scale for v in box)
    return preprocess_image(pixels, box, size), (height, width)


def side_by_side(*images: np.ndarray, scale: int = 1) -> np.ndarray:
    """Concatenate RGB images horizontally (nearest-neighbour upscaled by ``scale``), padding heights."""
    h = max(im.shape[0] for im in images)
    parts = []
    for im in images:
        im = check_rgb(im)
        if im.shape[0] < h:
            im = np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)))
        parts.append(im)
    out = np.concatenate(parts, axis=1)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def write_labels(image: np.ndarray, labels: Sequence[tuple[int, str]]) -> np.ndarray:
    """A copy of ``image`` with each ``(x, text)`` written at the top of column ``x``, yellow
    on a black box: the captions of side-by-side panels in GIFs and debug images."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(check_rgb(image))
    draw = ImageDraw.Draw(canvas)
    for x, text in labels:
        left, top, right, bottom = draw.textbbox((x + 3, 2), text)
        draw.rectangle([x, 0, right + 2, bottom + 2], fill=(0, 0, 0))
        draw.text((x + 3, 2), text, fill=(255, 255, 0))
    return np.asarray(canvas)


def goal_beside_view(goal: np.ndarray, view: np.ndarray, scale: int = 1, view_label: str = "camera") -> np.ndarray:
    """THE picture of goal reaching in every GIF and debug image: the goal on the left, the
    camera view on the right, upscaled by ``scale``, each captioned."""
    out = side_by_side(goal, view, scale=scale)
    return write_labels(out, [(0, "goal"), (goal.shape[1] * scale, view_label)])


# -- image shifts: what another camera, lens or exposure does to a frame (crl_ros.sim.shifts) ------
# Pure functions of a uint8 RGB frame; the observation pipeline above never calls them, so
# camera_node's pixels are unchanged unless a shift is asked for.
def adjust_exposure(image: np.ndarray, brightness: float = 0.0, contrast: float = 0.0,
                    colour: float = 0.0) -> np.ndarray:
    """White balance, contrast and brightness of an RGB uint8 frame: red gain ``1 + colour``
    and blue gain ``1 - colour`` (+ = warmer), contrast scaled by ``1 + contrast`` about
    mid-grey (a fixed pivot, so a goal image and an observation change alike), then
    ``brightness`` * 255 added; rounded and clipped to uint8."""
    out = check_rgb(image).astype(np.float32)
    out *= np.array([1.0 + colour, 1.0, 1.0 - colour], np.float32)
    out = (out - 127.5) * (1.0 + contrast) + 127.5 + 255.0 * brightness
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise of ``std`` grey levels, independent per pixel and channel."""
    out = check_rgb(image).astype(np.float32) + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@lru_cache(maxsize=16)
def _gaussian_taps(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``sigma`` pixels (taps to 3 sigma, edges mirrored) of an RGB
    uint8 frame: a defocused lens. ``sigma`` <= 0 returns a copy."""
    image = check_rgb(image)
    if sigma <= 0:
        return image.copy()
    taps = _gaussian_taps(float(sigma))
    radius = len(taps) // 2
    out = image.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        n = out.shape[axis]
        window = [slice(None)] * 3
        blurred = np.zeros_like(out)
        for k, w in enumerate(taps):
            window[axis] = slice(k, k + n)
            blurred += w * padded[tuple(window)]
        out = blurred
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
