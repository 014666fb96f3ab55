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


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ A @ src + t (Umeyama 1991, eqs. 34-43).

    Returns (A 2x2 = c*R, t 2). The reflection guard keeps R a proper rotation:
    a mirrored point set gets the best rotation, never a flip.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"umeyama needs two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    var_src = (src_c**2).sum() / len(src)
    cov = dst_c.T @ src_c / len(src)
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
    landmarks: np.ndarray, template: np.ndarray = DLIB_5PT_TEMPLATE, size: int = 150, padding: float = 0.25
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
    a, t = umeyama(template_points(template, size, padding), landmarks)
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
    """Image coordinates (x, y), each (size, size) float64, of every chip pixel (row v, column u)."""
    m = np.asarray(matrix, dtype=np.float64)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
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


def dlib_pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> on uint8: 5x5 binomial, no border, floor(sum/256).

    Output (H-3)//2 x (W-3)//2; output (c, r) is centred on input (2c+2, 2r+2).
    cv2.pyrDown differs (reflected borders, output centred on 2c, rounding), so
    it cannot give dlib's pixels. dlib returns an empty image below 9 pixels.
    """
    height, width = image.shape[:2]
    if height <= 8 or width <= 8:
        return np.zeros((0, 0) + image.shape[2:], dtype=np.uint8)
    out_h, out_w = (height - 3) // 2, (width - 3) // 2
    img = image.astype(np.uint16)  # 16 * 16 * 255 = 65280 fits, as in dlib's rgbptype
    taps = (1, 4, 6, 4, 1)
    rows = sum(k * img[:, i : i + 2 * out_w : 2] for i, k in enumerate(taps))
    both = sum(k * rows[i : i + 2 * out_h : 2] for i, k in enumerate(taps))
    return (both >> 8).astype(np.uint8)


def pyramid_source(image: np.ndarray, matrix: np.ndarray, size: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The image dlib samples this chip from, and the chip matrix in its coordinates.

    Without a pyramid that is (image, matrix). Otherwise, like extract_image_chips:
    crop to the chip's rotated box grown by 2, 6, 14... pixels (rounded to whole
    pixels), apply pyramid_down<2> per level, and map through point_down.
    """
    levels = pyramid_levels(matrix, size)
    if levels == 0:
        return image, np.asarray(matrix, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    last = size - 1.0
    corners = m[:, :2] @ np.array([[0, last, 0, last], [0, 0, last, last]]) + m[:, 2:3]
    grow = 2.0
    for _ in range(levels):
        grow = grow * 2 + 2
    height, width = image.shape[:2]
    left = max(corners[0].min() - grow, 0.0)
    top = max(corners[1].min() - grow, 0.0)
    right = min(corners[0].max() + grow, width - 1.0)
    bottom = min(corners[1].max() + grow, height - 1.0)
    box = [math.floor(value + 0.5) for value in (left, top, right, bottom)]
    level = image[box[1] : box[3] + 1, box[0] : box[2] + 1] if box[0] <= box[2] and box[1] <= box[3] else image[:0, :0]
    level_matrix = m.copy()
    level_matrix[:, 2] -= box[:2]
    for _ in range(levels):
        level = dlib_pyramid_down(level)
        level_matrix = level_matrix / 2.0
        level_matrix[:, 2] -= DLIB_PYRAMID_OFFSET
    return level, level_matrix


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
    value = bilinear_sample(source, source_matrix, size)
    value = np.floor(value) if truncate else np.floor(value + 0.5)
    return np.clip(value, 0, 255).astype(np.uint8)


def preprocess_cpu(image_rgb: np.ndarray, matrices: np.ndarray, size: int, mean, std, out: np.ndarray | None = None) -> np.ndarray:
    """Fast CPU form of the kernel's maths: float32 (N, 3, size, size), written into ``out`` if given.

    Not cv2.warpAffine/remap: their INTER_LINEAR quantises the sub-pixel position
    to 1/32 pixel (up to ~0.016 error in /256 units on sharp edges), so it would
    not match the float kernel. Here: float64 coordinates (so floor() and the
    inside test agree with the reference), one flat gather per 2x2 corner,
    float32 weights.
    """
    check_image(image_rgb)
    matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    count = len(matrices)
    if out is None:
        out = np.empty((count, 3, size, size), dtype=np.float32)
    elif out.shape != (count, 3, size, size) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {(count, 3, size, size)}, got {out.dtype} {out.shape}")
    height, width = image_rgb.shape[:2]
    flat = np.ascontiguousarray(image_rgb).reshape(-1, 3)
    inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(3, 1)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1)
    for n in range(count):
        x, y = chip_coordinates(matrices[n], size)
        x0, y0 = np.floor(x.ravel()), np.floor(y.ravel())
        inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < width) & (y0 + 1 < height)
        fx = (x.ravel() - x0).astype(np.float32)[:, None]
        fy = (y.ravel() - y0).astype(np.float32)[:, None]
        index = np.where(inside, y0 * width + x0, 0).astype(np.intp)
        tl, tr = flat[index].astype(np.float32), flat[index + 1].astype(np.float32)
        bl, br = flat[index + width].astype(np.float32), flat[index + width + 1].astype(np.float32)
        value = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
        value[~inside] = 0.0
        out[n] = ((value.T - mean) * inv_std).reshape(3, size, size)
    return out


def flip_chips(chips: np.ndarray) -> np.ndarray:
    """Mirror normalised NCHW (or CHW) chips left-right, for flip-averaged embeddings."""
    return np.ascontiguousarray(chips[..., ::-1])
