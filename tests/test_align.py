"""Face alignment: geometry against dlib, the CPU path against the reference maths,
and the CUDA kernel (compiled for the Jetson, run as host C++ here, on a GPU where present)."""
from __future__ import annotations

import ctypes
import math
import shutil
import subprocess

import numpy as np
import pytest

from edge.exc import EngineError, ImageError
from edge.vision import align
from edge.vision.align import (
    DLIB_5PT_TEMPLATE,
    MTCNN_TEMPLATE,
    chip_matrix,
    extract_chip,
    flip_chips,
    preprocess_cpu,
    pyramid_levels,
    umeyama,
    warp_reference,
)
from edge.vision.cuda_preprocess import CudaPreprocessor, kernel_source
from edge.vision.image import load_image

# dlib resnet's input normalisation (float32 means, divisor 256): realistic numbers for the checks.
MEAN = (122.782, 117.001, 104.298)
STD = (256.0, 256.0, 256.0)
SIZE = 150


@pytest.fixture(scope="module")
def dlib_faces(face_images, model_sources):
    """(image RGB, dlib 5-point detection, landmarks (5,2)) for every fixture photo with a face."""
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_sources["dlib_shape5"]))
    faces = []
    for paths in face_images.values():
        for path in paths:
            image = load_image(path)
            found = detector(image, 1)
            if found:
                shape = predictor(image, found[0])
                faces.append((image, shape, np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)))
    assert len(faces) >= 24, "the HOG detector should find most fixture faces"
    return faces


def pixel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


# ---------------------------------------------------------------- geometry vs dlib


def test_chip_matrix_places_the_chip_where_dlib_does(dlib_faces):
    import dlib

    for _, shape, landmarks in dlib_faces:
        details = dlib.get_face_chip_details(shape, SIZE, 0.25)
        m = chip_matrix(landmarks, DLIB_5PT_TEMPLATE, SIZE, 0.25)
        rect = details.rect
        centre = m @ np.array([(SIZE - 1) / 2, (SIZE - 1) / 2, 1.0])
        assert centre == pytest.approx([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2], abs=1e-9)
        assert math.atan2(m[1, 0], m[0, 0]) == pytest.approx(details.angle, abs=1e-12)
        # corners of the shrunk rectangle: (size - 1) steps of s' span r - l
        assert math.hypot(m[0, 0], m[1, 0]) * (SIZE - 1) == pytest.approx(rect.right() - rect.left(), abs=1e-9)


def test_chip_matrix_of_the_template_itself_is_dlibs_half_pixel_shift():
    # Landmarks exactly on the template: scale 1, no rotation, and dlib's centre at
    # size/2 (not (size-1)/2) shows up as a +0.5 pixel offset.
    m = chip_matrix(align.template_points(DLIB_5PT_TEMPLATE, SIZE, 0.25))
    assert m == pytest.approx(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), abs=1e-12)


def test_extract_chip_is_dlibs_face_chip(dlib_faces):
    import dlib

    worst, total, count = 0, 0.0, 0
    for image, shape, landmarks in dlib_faces:
        m = chip_matrix(landmarks)
        assert pyramid_levels(m, SIZE) == 0  # LFW faces are smaller than the 2x threshold
        diff = pixel_diff(extract_chip(image, m, SIZE, truncate=True), np.asarray(dlib.get_face_chip(image, shape, SIZE, 0.25)))
        worst, total, count = max(worst, int(diff.max())), total + diff.sum(), count + diff.size
    print(f"\nextract_chip vs dlib.get_face_chip, {len(dlib_faces)} faces: max {worst}, mean {total / count:.5f}")
    # Same double arithmetic and truncation as dlib: only a value landing within
    # rounding noise of an integer could differ, and then by one.
    assert worst <= 1
    assert total / count < 1e-4


@pytest.mark.parametrize("factor", [3, 5])
def test_extract_chip_matches_dlib_with_its_pyramid(dlib_faces, factor):
    import cv2
    import dlib

    worst, total, count, levels, unfiltered = 0, 0.0, 0, [], []
    for image, shape, landmarks in dlib_faces[::2]:
        big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        points = [dlib.point(p.x * factor, p.y * factor) for p in shape.parts()]
        box = shape.rect
        big_shape = dlib.full_object_detection(
            dlib.rectangle(box.left() * factor, box.top() * factor, box.right() * factor, box.bottom() * factor), points
        )
        expected = np.asarray(dlib.get_face_chip(big, big_shape, SIZE, 0.25))
        m = chip_matrix(landmarks * factor)
        levels.append(pyramid_levels(m, SIZE))
        diff = pixel_diff(extract_chip(big, m, SIZE, truncate=True), expected)
        worst, total, count = max(worst, int(diff.max())), total + diff.sum(), count + diff.size
        if levels[-1]:
            # What the pyramid is for: plain bilinear sampling of the big image differs.
            unfiltered.append(pixel_diff(np.floor(align.bilinear_sample(big, m, SIZE)).astype(np.uint8), expected).mean())
    print(f"\n{factor}x upscaled, levels {sorted(set(levels))}: max {worst}, mean {total / count:.5f}; "
          f"without the pyramid mean {np.mean(unfiltered):.2f}")
    assert sum(level > 0 for level in levels) >= len(levels) // 2
    assert np.mean(unfiltered) > 0.5
    # The pyramid is dlib's integer pyramid_down<2> (floor(sum/256)) with dlib's
    # point_down offsets, so the same bound as without it holds.
    assert worst <= 1
    assert total / count < 1e-4


def test_pyramid_level_threshold_is_twice_the_chip():
    # dlib adds a level while ((r - l)/2^k + 1)^2 > size^2, i.e. step s' > 2, 4, ...
    def matrix(step):
        return np.array([[step, 0.0, 0.0], [0.0, step, 0.0]])

    assert [pyramid_levels(matrix(s), SIZE) for s in (0.7, 1.999, 2.001, 3.9, 4.001, 8.01)] == [0, 0, 1, 1, 2, 3]
    rotated = np.array([[2.1 * math.cos(1.0), -2.1 * math.sin(1.0), 5], [2.1 * math.sin(1.0), 2.1 * math.cos(1.0), 7]])
    assert pyramid_levels(rotated, SIZE) == 1


def dlib_pyramid_down_literal(image):
    """dlib's pyramid_down<2> loops (image_pyramid.h), written out in integers."""
    img = image.astype(np.int64)
    out_h, out_w = (img.shape[0] - 3) // 2, (img.shape[1] - 3) // 2
    taps = [1, 4, 6, 4, 1]
    rows = np.zeros((img.shape[0], out_w, 3), np.int64)
    for c in range(out_w):
        rows[:, c] = sum(k * img[:, 2 * c + i] for i, k in enumerate(taps))
    out = np.zeros((out_h, out_w, 3), np.int64)
    for r in range(out_h):
        out[r] = sum(k * rows[2 * r + i] for i, k in enumerate(taps))
    return (out // 256).astype(np.uint8)


def test_dlib_pyramid_down_is_dlibs_integer_filter():
    rng = np.random.default_rng(4)
    for shape in ((41, 30, 3), (9, 12, 3), (64, 77, 3)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(align.dlib_pyramid_down(image), dlib_pyramid_down_literal(image))
    flat = np.full((41, 30, 3), 255, dtype=np.uint8)
    assert (align.dlib_pyramid_down(flat) == 255).all()  # weights sum to 256 exactly: no drift
    assert align.dlib_pyramid_down(flat[:8]).size == 0  # dlib gives up below 9 pixels


# ---------------------------------------------------------------- Umeyama


def similarity(scale, angle, shift):
    c, s = math.cos(angle), math.sin(angle)
    return scale * np.array([[c, -s], [s, c]]), np.asarray(shift, dtype=np.float64)


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 150, (5, 2))
    a_true, t_true = similarity(2.37, -0.61, (412.5, 77.25))
    a, t = umeyama(src, src @ a_true.T + t_true)
    assert a == pytest.approx(a_true, abs=1e-10)
    assert t == pytest.approx(t_true, abs=1e-8)


def test_umeyama_is_least_squares_under_noise():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 150, (5, 2))
    a_true, t_true = similarity(0.8, 0.3, (10, -4))
    dst = src @ a_true.T + t_true + rng.normal(0, 0.5, (5, 2))
    a, t = umeyama(src, dst)
    best = np.sum((src @ a.T + t - dst) ** 2)
    for _ in range(50):  # no nearby similarity fits better
        a2, t2 = similarity(math.hypot(*a[:, 0]) * rng.uniform(0.99, 1.01), math.atan2(a[1, 0], a[0, 0]) + rng.normal(0, 0.01), t + rng.normal(0, 0.1, 2))
        assert np.sum((src @ a2.T + t2 - dst) ** 2) >= best


def test_umeyama_never_returns_a_reflection():
    src = align.template_points(MTCNN_TEMPLATE)
    mirrored = src * [-1.0, 1.0]  # a left-right mirror cannot be reached by rotation + scale
    a, _ = umeyama(src, mirrored)
    assert np.linalg.det(a) > 0
    assert a.T @ a == pytest.approx(np.eye(2) * (a.T @ a)[0, 0], abs=1e-9)  # still c * rotation


def test_umeyama_rejects_mismatched_points():
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


# ---------------------------------------------------------------- reference maths


def test_warp_reference_follows_the_written_formula():
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 0] = np.arange(20).reshape(4, 5) * 10  # R ramps; G, B constant
    image[..., 1] = 50
    image[..., 2] = 7
    m = np.array([[1.0, 0.0, 1.25], [0.0, 1.0, 0.5]])  # chip (u, v) -> (u + 1.25, v + 0.5)
    out = warp_reference(image, m, 4, mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0))
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    # (0,0) samples x=1.25, y=0.5: R = 10*(y*5 + x) = 10*(2.5 + 1.25)
    assert out[0, 0, 0] == pytest.approx((37.5 - 1.0) / 2.0)
    assert out[1, 0, 0] == pytest.approx((50 - 2.0) / 4.0)
    assert out[2, 0, 0] == pytest.approx((7 - 3.0) / 8.0)
    # u=3 -> x=4.25: x0 + 1 = 5 is outside a 5-wide image -> black, then normalised
    assert out[:, 0, 3] == pytest.approx([(0 - 1.0) / 2.0, (0 - 2.0) / 4.0, (0 - 3.0) / 8.0])
    # dlib's rule also blacks out the exact last column (its right neighbour is missing)
    edge = warp_reference(image, np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 1.0]]), 1, (0, 0, 0), (1, 1, 1))
    assert edge[:, 0, 0] == pytest.approx([0, 0, 0])


def test_image_must_be_rgb_uint8():
    m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    with pytest.raises(ImageError):
        preprocess_cpu(np.zeros((20, 20), np.uint8), m[None], 8, MEAN, STD)
    with pytest.raises(ImageError):
        extract_chip(np.zeros((20, 20, 3), np.float32), m, 8)


def border_matrices(image_shape, faces_matrix):
    """Matrices whose chips stick out of each side of the image, plus the face's own."""
    h, w = image_shape[:2]
    shifted = []
    for dx, dy in ((-0.6, 0), (0.6, 0), (0, -0.6), (0, 0.6)):
        m = faces_matrix.copy()
        m[:, 2] += (dx * w, dy * h)
        shifted.append(m)
    return np.stack([faces_matrix] + shifted)


def test_preprocess_cpu_matches_reference(dlib_faces):
    worst = 0.0
    for image, _, landmarks in dlib_faces[:8]:
        matrices = border_matrices(image.shape, chip_matrix(landmarks))
        fast = preprocess_cpu(image, matrices, SIZE, MEAN, STD)
        for m, got in zip(matrices, fast):
            worst = max(worst, float(np.abs(got - warp_reference(image, m, SIZE, MEAN, STD)).max()))
    print(f"\npreprocess_cpu vs warp_reference: max abs {worst:.2e} (normalised units, std 256)")
    assert worst < 1e-3


def test_preprocess_cpu_on_sharp_noise_writes_into_out():
    # Random noise is the worst case for interpolation error (largest gradients).
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (123, 211, 3), dtype=np.uint8)
    matrices = np.stack([np.array([[0.731, -0.213, 40.3], [0.213, 0.731, 30.71]]),
                         np.array([[1.9, 0.4, -20.0], [-0.4, 1.9, 60.0]])])
    out = np.full((2, 3, 64, 64), np.nan, dtype=np.float32)
    result = preprocess_cpu(image, matrices, 64, MEAN, STD, out=out)
    assert result is out
    for m, got in zip(matrices, out):
        assert np.abs(got - warp_reference(image, m, 64, MEAN, STD)).max() < 1e-3


def test_flip_chips_mirrors_columns_only():
    chips = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    flipped = flip_chips(chips)
    assert flipped.flags.c_contiguous
    assert (flipped[..., 0] == chips[..., 4]).all() and (flipped[:, :, 2, 1] == chips[:, :, 2, 3]).all()
    assert (flip_chips(flipped) == chips).all()


# ---------------------------------------------------------------- CUDA kernel


def kernel_cases(dlib_faces):
    """(frame BGR with padded rows, matrices float32, expected float32 (N,3,S,S))."""
    image, _, landmarks = dlib_faces[0]
    matrices = border_matrices(image.shape, chip_matrix(landmarks)).astype(np.float32)
    expected = np.stack([warp_reference(image, m.astype(np.float64), SIZE, MEAN, STD) for m in matrices])
    return image, matrices, expected


def test_kernel_compiles_for_orin(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not installed")
    source = tmp_path / "align_preprocess.cu"
    source.write_text(kernel_source())
    ptx = tmp_path / "align_preprocess.ptx"
    result = subprocess.run([nvcc, "-ptx", "-arch=sm_87", str(source), "-o", str(ptx)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ".entry align_preprocess(" in ptx.read_text()


HOST_SHIM = r"""
#include <math.h>
#include <stddef.h>
struct HostDim3 { unsigned int x, y, z; };
static HostDim3 blockIdx, threadIdx, blockDim;
#define __global__
#include "align_preprocess.cu"

extern "C" void run_grid(const unsigned char *frame, int width, int height, int pitch, int bgr,
                         const float *matrices, int n_faces, const float *mean, const float *inv_std,
                         int size, float *out, int block_x, int block_y)
{
    blockDim.x = block_x; blockDim.y = block_y; blockDim.z = 1;
    for (blockIdx.z = 0; blockIdx.z < (unsigned)n_faces; ++blockIdx.z)
    for (blockIdx.y = 0; blockIdx.y < (unsigned)((size + block_y - 1) / block_y); ++blockIdx.y)
    for (blockIdx.x = 0; blockIdx.x < (unsigned)((size + block_x - 1) / block_x); ++blockIdx.x)
    for (threadIdx.y = 0; threadIdx.y < (unsigned)block_y; ++threadIdx.y)
    for (threadIdx.x = 0; threadIdx.x < (unsigned)block_x; ++threadIdx.x)
        align_preprocess(frame, width, height, pitch, bgr, matrices, n_faces, mean[0], mean[1], mean[2],
                         inv_std[0], inv_std[1], inv_std[2], size, out);
}
"""


def test_kernel_source_computes_the_reference_maths_on_the_cpu(tmp_path, dlib_faces):
    """The .cu itself, built as host C++ with a grid-loop shim: catches indexing,
    pitch, BGR and plane-order mistakes without a GPU (not GPU float rounding)."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler")
    (tmp_path / "align_preprocess.cu").write_text(kernel_source())
    (tmp_path / "shim.cpp").write_text(HOST_SHIM)
    library = tmp_path / "kernel_host.so"
    build = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-I", str(tmp_path), str(tmp_path / "shim.cpp"), "-o", str(library)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run_grid = ctypes.CDLL(str(library)).run_grid

    image, matrices, expected = kernel_cases(dlib_faces)
    padded = np.zeros((image.shape[0], image.shape[1] + 7, 3), dtype=np.uint8)  # pitch > 3 * width
    for bgr, frame in ((1, image[..., ::-1]), (0, image)):
        padded[:, : image.shape[1]] = frame
        out = np.full((len(matrices), 3, SIZE, SIZE), np.nan, dtype=np.float32)
        mean = np.asarray(MEAN, np.float32)
        inv_std = (1 / np.asarray(STD)).astype(np.float32)
        pointer = lambda array: array.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
        run_grid(pointer(padded), image.shape[1], image.shape[0], padded.strides[0], bgr, pointer(matrices),
                 len(matrices), pointer(mean), pointer(inv_std), SIZE, pointer(out), 32, 8)
        worst = float(np.abs(out - expected).max())
        print(f"\nkernel source on the CPU (bgr={bgr}) vs warp_reference: max abs {worst:.2e}")
        assert worst < 1e-3


def test_gpu_kernel_matches_reference(dlib_faces, tmp_path):
    try:
        import pycuda.driver  # noqa: F401  (an optional, GPU-only dependency)
    except ImportError:
        pytest.skip("pycuda is not installed: no GPU run here")
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not installed: the kernel cannot be compiled for this test")
    from edge_build.backends.tensorrt.kernels import compile_kernels

    try:
        preprocessor = CudaPreprocessor(SIZE, MEAN, STD, bgr=True, kernel_image=compile_kernels(tmp_path))
    except EngineError as error:
        pytest.skip(f"CUDA GPU not available: {error}")
    image, matrices, expected = kernel_cases(dlib_faces)
    got = preprocessor.run(np.ascontiguousarray(image[..., ::-1]), matrices)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


def test_cuda_preprocessor_says_what_is_missing():
    try:
        import pycuda  # noqa: F401
    except ImportError:
        with pytest.raises(EngineError, match="pycuda is not installed"):
            CudaPreprocessor(SIZE, MEAN, STD)
    else:
        pytest.skip("pycuda is installed here; the missing-pycuda message cannot be shown")
