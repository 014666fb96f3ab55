"""Face alignment: five landmarks -> chip matrix -> aligned chip / network input.

Conventions
-----------
A *chip matrix* ``M`` (2x3, float64) maps a chip pixel (u, v) to an image point
(x, y), pixel centres at integer coordinates (dlib's convention; OpenCV's too
when used with WARP_INVERSE_MAP)::

    x = M[0,0]*u + M[0,1]*v + M[0,2]
    y = M[1,0]*u + M[1,1]*v + M[1,2]

Sampling formulas (the one definition; :func:`warp_reference` is its literal
form, :func:`preprocess_cpu` and ``kernels/align_preprocess.cu`` compute the
same, in float32)::

    x0 = floor(x), y0 = floor(y), fx = x - x0, fy = y - y0
    inside = x0 >= 0 and y0 >= 0 and x0 + 1 < W and y0 + 1 < H
    value_c = 0 if not inside, else
        (1-fy)*((1-fx)*I[y0,x0,c] + fx*I[y0,x0+1,c]) + fy*((1-fx)*I[y0+1,x0,c] + fx*I[y0+1,x0+1,c])
    out[c, v, u] = (value_c - mean_c) / std_c          (c = R, G, B; CHW)

The "0 when the 2x2 neighbourhood leaves the image" rule is dlib's
(interpolate_bilinear returns false and transform_image paints black).

:func:`extract_chip` additionally reproduces dlib's anti-alias pyramid and
uint8 truncation, so that ``extract_chip(img, chip_matrix(shape5))`` equals
``dlib.get_face_chip(img, shape5, 150, 0.25)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.exc import ImageError

# dlib get_face_chip_details, 5-point model, unit face box (x right, y down).
# Order: image-right eye outer, image-right eye inner, image-left eye outer,
# image-left eye inner, nose base (iBUG-68 indices 45, 42, 36, 39, 33).
DLIB_5PT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)

# MTCNN-style points in the same unit box, derived from dlib's 68-point mean face
# (eye-contour means, point 30, points 48/54). Order: image-left eye centre,
# image-right eye centre, nose tip, image-left mouth corner, image-right mouth corner.
MTCNN_TEMPLATE = np.array(
    [
        [0.225492, 0.215990],
        [0.754761, 0.215990],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    dtype=np.float64,
)

# dlib's pyramid_down<2>::point_down is p/2 - (1.25, 0.75). Its filter output
# (c, r) is actually centred on input (2c+2, 2r+2), i.e. p/2 - 1; we copy dlib's
# mapping, not the "true" one, because the goal here is dlib's exact chip.
DLIB_PYRAMID_OFFSET = np.array([1.25, 0.75])


def template_points(template: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Template points in chip pixels: size * (padding + p) / (1 + 2 * padding)."""
    template = np.asarray(template, dtype=np.float64)
    return (padding + template) / (1.0 + 2.0 * padding) * size


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ A @ src + t (Umeyama 1991, eqs. 34-43).

    Returns (A 2x2 = c*R, t 2). The reflection guard keeps R a proper rotation:
    a mirrored point set gets the best rotation, never a flip. Optional per-point
    ``weights`` make the fit trust some points more (see edge.vision.mtcnn.FIT_WEIGHTS).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"umeyama needs two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mean_src, mean_dst = w @ src, w @ dst
    src_c, dst_c = src - mean_src, dst - mean_dst
    var_src = (w * (src_c**2).sum(axis=1)).sum()
    cov = (dst_c * w[:, None]).T @ src_c
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det_cov = np.linalg.det(cov)
    if det_cov < 0 or (det_cov == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1.0  # numpy sorts singular values descending: flip the smaller one
    rotation = u @ s @ vt
    scale = np.trace(np.diag(d) @ s) / var_src if var_src != 0 else 1.0
    a = scale * rotation
    return a, mean_dst - a @ mean_src


def chip_matrix(
    landmarks: np.ndarray, template: np.ndarray = DLIB_5PT_TEMPLATE, size: int = 150, padding: float = 0.25,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """2x3 matrix mapping chip pixel (u, v) to image (x, y), as dlib's
    get_face_chip_details + extract_image_chip place the chip.

    Not plain ``A @ (u, v) + t``: dlib keeps only angle and scale of the fit,
    centres an extraction rectangle of side w = size*scale on A @ (size/2) + t,
    shrinks it by one pixel (centered_drect) and spreads the chip's size pixels
    over its corners, so the step is s' = (w - 1) / (size - 1).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    if landmarks.shape != template.shape or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks {landmarks.shape} do not match the template {template.shape}")
    a, t = umeyama(template_points(template, size, padding), landmarks, weights)
    angle = math.atan2(a[1, 0], a[0, 0])
    scale = math.hypot(a[0, 0], a[1, 0])
    centre = a @ np.array([size / 2.0, size / 2.0]) + t
    half = (size * scale - 1.0) / 2.0
    step = 2.0 * half / (size - 1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = np.empty((2, 3))
    matrix[:, :2] = rot * step
    matrix[:, 2] = centre - rot @ np.array([half, half])
    return matrix


def pyramid_levels(matrix: np.ndarray, size: int = 150) -> int:
    """How many pyramid_down<2> levels dlib applies before sampling this chip.

    dlib halves the extraction rectangle (span r - l = s' * (size - 1)) while the
    halved rectangle's area ((r - l)/2^k + 1)^2 still exceeds size^2; i.e. one
    level once the chip scale passes ~1.993 source pixels per chip pixel.
    """
    span = math.hypot(matrix[0][0], matrix[1][0]) * (size - 1)
    levels = 0
    while (span / 2 ** (levels + 1) + 1.0) ** 2 > size * size:
        levels += 1
    return levels


def check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageError(f"expected an RGB uint8 image of shape (H, W, 3), got {got}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ImageError(f"image of {image.shape[1]}x{image.shape[0]} pixels is too small to sample")


def chip_coordinates(matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (x, y), each (size, size) float64, of every chip pixel (row v, column u).

    Every CPU path takes its coordinates from here: the same float64 operations
    in the same order, so floor() and the inside test agree bit for bit.
    """
    m = np.asarray(matrix, dtype=np.float64)
    u = np.arange(size, dtype=np.float64)[None, :]
    v = np.arange(size, dtype=np.float64)[:, None]
    return m[0, 0] * u + m[0, 1] * v + m[0, 2], m[1, 0] * u + m[1, 1] * v + m[1, 2]


def bilinear_sample(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The module docstring's sampling formula in float64: (size, size, C) values, 0 outside."""
    height, width = image.shape[:2]
    x, y = chip_coordinates(matrix, size)
    x0, y0 = np.floor(x), np.floor(y)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < width) & (y0 + 1 < height)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    xi = np.where(inside, x0, 0).astype(np.intp)
    yi = np.where(inside, y0, 0).astype(np.intp)
    img = image.astype(np.float64)
    value = (1 - fy) * ((1 - fx) * img[yi, xi] + fx * img[yi, xi + 1]) + fy * (
        (1 - fx) * img[yi + 1, xi] + fx * img[yi + 1, xi + 1]
    )
    return np.where(inside[..., None], value, 0.0)


def warp_reference(image_rgb: np.ndarray, matrix: np.ndarray, size: int, mean, std) -> np.ndarray:
    """Reference preprocessing (defines the maths, see the module docstring): float32 (3, size, size)."""
    check_image(image_rgb)
    value = bilinear_sample(image_rgb, matrix, size)
    mean = np.asarray(mean, dtype=np.float64).reshape(1, 1, 3)
    std = np.asarray(std, dtype=np.float64).reshape(1, 1, 3)
    return ((value - mean) / std).transpose(2, 0, 1).astype(np.float32)


def corner_samples(image: np.ndarray, matrix: np.ndarray, size: int):
    """What the fast paths need to interpolate, flat over the chip's pixels:
    corners (4, 3, size*size) uint8 = I[y0,x0], I[y0,x0+1], I[y0+1,x0], I[y0+1,x0+1]
    per RGB plane (meaningless where outside), fx, fy (float64) and the inside mask.
    One np.take over the raw bytes: ~5x faster than fancy indexing (H, W, 3).
    """
    height, width = image.shape[:2]
    x, y = (coordinate.ravel() for coordinate in chip_coordinates(matrix, size))
    x0, y0 = np.floor(x), np.floor(y)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < width) & (y0 + 1 < height)
    first = np.where(inside, (y0 * width + x0) * 3, 0).astype(np.intp)
    offsets = (np.array([0, 3, 3 * width, 3 * width + 3])[:, None] + np.arange(3)).reshape(12, 1)
    corners = np.take(np.ascontiguousarray(image).reshape(-1), first + offsets).reshape(4, 3, -1)
    return corners, x - x0, y - y0, inside


def dlib_pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> on uint8: 5x5 binomial, no border, floor(sum/256).

    Output (H-3)//2 x (W-3)//2; output (c, r) is centred on input (2c+2, 2r+2).
    cv2.pyrDown on uint8 differs (rounds, reflects borders, centres on 2c); on
    float32 its sums of integers are exact and the 1/256 scale is a power of two,
    so flooring its interior (which never touches the border) gives dlib's pixels.
    dlib returns an empty image below 9 pixels.
    """
    height, width = image.shape[:2]
    if height <= 8 or width <= 8:
        return np.zeros((0, 0) + image.shape[2:], dtype=np.uint8)
    out_h, out_w = (height - 3) // 2, (width - 3) // 2
    down = cv2.pyrDown(image.astype(np.float32))
    return np.floor(down[1 : 1 + out_h, 1 : 1 + out_w]).astype(np.uint8)


@dataclass(frozen=True)
class PyramidPlan:
    """Where dlib samples a chip from: ``box`` (left, top, right, bottom, inclusive whole
    pixels, empty when right < left or bottom < top) cropped from the image, shrunk
    ``levels`` times by pyramid_down<2>, and sampled with ``matrix`` (the chip matrix
    in the shrunk crop's coordinates). The CPU path and the CUDA aligner both follow it."""

    levels: int
    box: tuple
    matrix: np.ndarray

    def level_shapes(self) -> list[tuple[int, int]]:
        """(height, width) of the crop and of each level after it; (0, 0) once dlib gives up (< 9 px)."""
        left, top, right, bottom = self.box
        height, width = max(bottom - top + 1, 0), max(right - left + 1, 0)
        shapes = [(height, width)]
        for _ in range(self.levels):
            height, width = ((height - 3) // 2, (width - 3) // 2) if height > 8 and width > 8 else (0, 0)
            shapes.append((height, width))
        return shapes


def pyramid_plan(image_shape, matrix: np.ndarray, size: int = 150) -> PyramidPlan:
    """What extract_image_chips does before sampling: crop to the chip's rotated box grown
    by 2, 6, 14... pixels (rounded to whole pixels), one pyramid_down<2> per level, and
    the matrix mapped through point_down. No pyramid: the whole image, same matrix."""
    height, width = image_shape[:2]
    m = np.asarray(matrix, dtype=np.float64)
    levels = pyramid_levels(m, size)
    if levels == 0:
        return PyramidPlan(0, (0, 0, width - 1, height - 1), m)
    last = size - 1.0
    corners = m[:, :2] @ np.array([[0, last, 0, last], [0, 0, last, last]]) + m[:, 2:3]
    grow = 2.0
    for _ in range(levels):
        grow = grow * 2 + 2
    left = max(corners[0].min() - grow, 0.0)
    top = max(corners[1].min() - grow, 0.0)
    right = min(corners[0].max() + grow, width - 1.0)
    bottom = min(corners[1].max() + grow, height - 1.0)
    box = tuple(math.floor(value + 0.5) for value in (left, top, right, bottom))
    level_matrix = m.copy()
    level_matrix[:, 2] -= box[:2]
    for _ in range(levels):
        level_matrix = level_matrix / 2.0
        level_matrix[:, 2] -= DLIB_PYRAMID_OFFSET
    return PyramidPlan(levels, box, level_matrix)


def pyramid_source(image: np.ndarray, matrix: np.ndarray, size: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The image dlib samples this chip from, and the chip matrix in its coordinates
    (see :func:`pyramid_plan`). Without a pyramid that is (image, matrix)."""
    plan = pyramid_plan(image.shape, matrix, size)
    if plan.levels == 0:
        return image, plan.matrix
    left, top, right, bottom = plan.box
    level = image[top : bottom + 1, left : right + 1] if left <= right and top <= bottom else image[:0, :0]
    for _ in range(plan.levels):
        level = dlib_pyramid_down(level)
    return level, plan.matrix


def mirror_matrix(matrix: np.ndarray, size: int) -> np.ndarray:
    """The chip matrix of the mirror image of a chip: chip'(u, v) = chip(size - 1 - u, v).

    Sampling with it gives flip_chips() of the chip without a copy, which is how the
    CUDA aligner writes the flipped half of a flip-averaged batch."""
    m = np.array(matrix, dtype=np.float64).reshape(2, 3)
    mirrored = m.copy()
    mirrored[:, 0] = -m[:, 0]
    mirrored[:, 2] = m[:, 2] + m[:, 0] * (size - 1)
    return mirrored


def extract_chip(image_rgb: np.ndarray, matrix: np.ndarray, size: int = 150, truncate: bool = True) -> np.ndarray:
    """Aligned uint8 (size, size, 3) chip with dlib's rules: anti-alias pyramid when
    the chip shrinks the face by ~2x or more, bilinear sampling, black outside.

    ``truncate=True`` drops the fraction like dlib (pixel-identical chips);
    ``False`` rounds to nearest, which is half a grey level less biased.
    """
    check_image(image_rgb)
    source, source_matrix = pyramid_source(image_rgb, matrix, size)
    if source.shape[0] < 2 or source.shape[1] < 2:
        return np.zeros((size, size, 3), dtype=np.uint8)
    corners, fx, fy, inside = corner_samples(source, source_matrix, size)
    tl, tr, bl, br = corners.astype(np.float64)
    # dlib's expression, in double, operation for operation: truncation then agrees bit for bit.
    value = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    value[:, ~inside] = 0.0
    value = np.floor(value) if truncate else np.floor(value + 0.5)
    return np.clip(value, 0, 255).astype(np.uint8).T.reshape(size, size, 3)


def preprocess_cpu(image_rgb: np.ndarray, matrices: np.ndarray, size: int, mean, std, out: np.ndarray | None = None) -> np.ndarray:
    """Fast CPU form of the kernel's maths: float32 (N, 3, size, size), written into ``out`` if given.

    Not cv2.warpAffine/remap: on uint8 images they round the result to whole grey
    levels (0.5/256 = 2e-3 off), and OpenCV 4.x warps quantise the sub-pixel
    position to 1/32 pixel even on float images (INTER_BITS = 5; up to ~0.016 in
    /256 units on sharp edges) while 5.0 does not, so the result would depend on
    the OpenCV build. Here: the reference's float64 coordinates (so floor() and
    the inside test agree with it), one flat gather of all 2x2 corners in RGB
    planes, float32 weights.
    """
    check_image(image_rgb)
    matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    count = len(matrices)
    if out is None:
        out = np.empty((count, 3, size, size), dtype=np.float32)
    elif out.shape != (count, 3, size, size) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 {(count, 3, size, size)} array, got {out.dtype} {out.shape}")
    image_rgb = np.ascontiguousarray(image_rgb)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1)
    inv_std = (1.0 / np.asarray(std, dtype=np.float64)).astype(np.float32).reshape(3, 1)
    for n, m in enumerate(matrices):
        corners, fx, fy, inside = corner_samples(image_rgb, m, size)
        fx, fy = fx.astype(np.float32), fy.astype(np.float32)
        gx, gy = 1 - fx, 1 - fy
        tl, tr, bl, br = corners.astype(np.float32)
        value = gy * (gx * tl + fx * tr) + fy * (gx * bl + fx * br)
        value[:, ~inside] = 0.0
        plane = out[n].reshape(3, -1)
        np.subtract(value, mean, out=plane)
        plane *= inv_std
    return out


def flip_chips(chips: np.ndarray) -> np.ndarray:
    """Mirror normalised NCHW (or CHW) chips left-right, for flip-averaged embeddings."""
    return np.ascontiguousarray(chips[..., ::-1])
