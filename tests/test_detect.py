"""MTCNN: the torch modules, their ONNX export, and the numpy runtime on real faces.

The ONNX engines are exported once per module from the real weights into a
temporary folder, with manifests, and opened through edge.engines.load_engine
exactly as the kiosk opens them.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.engines import load_engine
from edge.engines.manifest import read_manifest
from edge.exc import ConfigError, ImageError, ManifestMismatch, ModelError
from edge.models import registry
from edge.models.registry import engine_path
from edge.pipeline import FacePipeline, choose_main_face
from edge.vision.detector import Detector, Face
from edge.vision.mtcnn import FITTED_TEMPLATE, MtcnnDetector, load_detector, nms, overlap
from edge.vision.image import load_image

torch = pytest.importorskip("torch", reason="the build extra (torch) is needed to export MTCNN")
from edge_build.models import mtcnn  # noqa: E402  (needs torch)

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"
FACE_PATHS = sorted(FACES.glob("*.jpg"))
# Photos that show a second, real person besides the subject (checked by eye):
# a face at the right edge, and a cut-off face at the top.
TWO_PEOPLE = {"Arnold_Schwarzenegger_0004.jpg", "Gloria_Macapagal_Arroyo_0003.jpg"}


@pytest.fixture(scope="module")
def nets(model_sources):
    return mtcnn.load_mtcnn(model_sources["mtcnn_pnet"], model_sources["mtcnn_rnet"], model_sources["mtcnn_onet"])


@pytest.fixture(scope="module")
def engine_paths(models_ready):
    """The engines `models fetch` exported through the build stages."""
    return {key: engine_path(f"detector-{key}") for key in mtcnn.NETS}


@pytest.fixture(scope="module")
def detector(engine_paths):
    return load_detector(engine_paths["pnet"], engine_paths["rnet"], engine_paths["onet"], threads=1)


@pytest.fixture(scope="module")
def fixture_faces(detector):
    """{file name: (image, faces)} for every committed fixture photo."""
    results = {}
    for path in FACE_PATHS:
        image = load_image(path)
        results[path.name] = (image, detector.detect(image))
    return results


def subject(image, faces) -> Face:
    """The photo's subject: LFW centres the person the photo is labelled with."""
    middle_x, middle_y = image.shape[1] / 2, image.shape[0] / 2
    central = [face for face in faces if face.box[0] < middle_x < face.box[2] and face.box[1] < middle_y < face.box[3]]
    assert len(central) == 1, f"{len(central)} faces cover the image centre"
    return central[0]


def inter_ocular(face: Face) -> float:
    return float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))


# --- the torch modules and their ONNX export ---------------------------------------------------


@pytest.mark.parametrize("key", mtcnn.NETS)
def test_onnx_matches_torch(key, nets, engine_paths):
    engine = load_engine(engine_paths[key], threads=1)
    generator = torch.Generator().manual_seed(0)
    # PNet at two sizes and batches: its height, width and batch must all be dynamic.
    shapes = [(3, 3, 37, 29), (1, 3, 120, 90)] if key == "pnet" else [(1, 3) + (mtcnn.CONTRACT[key]["size"][0],) * 2, (7, 3) + (mtcnn.CONTRACT[key]["size"][0],) * 2]
    for shape in shapes:
        batch = torch.rand(shape, generator=generator) * 2 - 1  # the normalised range of real pixels
        with torch.no_grad():
            expected = [tensor.numpy() for tensor in nets[key](batch)]
        actual = engine.run(batch.numpy())
        assert [name for name in engine.output_names] == mtcnn.CONTRACT[key]["outputs"]
        assert len(actual) == len(expected)
        for ours, theirs in zip(actual, expected):
            assert ours.shape == theirs.shape
            assert np.abs(ours - theirs).max() < 1e-4


def test_prelu_rewrite_is_exact():
    layer = mtcnn.PReLU(5)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([-0.6, 0.0, 0.25, 1.0, 1.3]))
    inputs = torch.randn(4, 5, 7, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(layer(inputs), torch.nn.functional.prelu(inputs, layer.weight))
    flat = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(layer(flat), torch.nn.functional.prelu(flat, layer.weight))


def test_weights_load_strictly(model_sources):
    state = torch.load(model_sources["mtcnn_rnet"], weights_only=True)
    state.pop("dense4.weight")
    with pytest.raises(ModelError, match="dense4.weight"):
        mtcnn.build_net("rnet", state)
    with pytest.raises(ModelError, match="not found"):
        mtcnn.load_mtcnn(model_sources["mtcnn_pnet"], Path("/nonexistent/rnet.pt"), model_sources["mtcnn_onet"])


def test_checkpoint_round_trip(nets, tmp_path):
    path = tmp_path / "mtcnn.pt"
    mtcnn.save_checkpoint(path, nets)
    loaded, contracts = mtcnn.load_checkpoint(path)
    assert contracts == mtcnn.CONTRACT
    batch = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for before, after in zip(nets["onet"](batch), loaded["onet"](batch)):
            assert torch.equal(before, after)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"arch": "dlib_resnet_v1", "state_dicts": {}}, path)
    with pytest.raises(ModelError, match="not an MTCNN checkpoint"):
        mtcnn.load_checkpoint(path)


def test_manifest_states_the_contract(engine_paths):
    manifest = read_manifest(engine_paths["onet"])
    assert manifest["preprocess"] == {"size": [48, 48], "colour": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3, "layout": "NCHW"}
    assert [spec["name"] for spec in manifest["outputs"]] == ["prob", "reg", "landmarks"]
    assert read_manifest(engine_paths["pnet"])["inputs"][0]["shape"] == [-1, 3, -1, -1]


def test_detector_refuses_an_engine_with_another_colour_order(engine_paths):
    engines = [load_engine(engine_paths[key], threads=1) for key in mtcnn.NETS]
    engines[1].manifest = {**engines[1].manifest, "preprocess": {**engines[1].manifest["preprocess"], "colour": "BGR"}}
    with pytest.raises(ManifestMismatch, match="colour"):
        MtcnnDetector(*engines)


def test_detector_refuses_engines_in_the_wrong_roles(engine_paths):
    pnet, rnet, onet = (load_engine(engine_paths[key], threads=1) for key in mtcnn.NETS)
    with pytest.raises(ManifestMismatch, match="detector-rnet"):
        MtcnnDetector(pnet, onet, rnet)


# --- detection on real faces ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [path.name for path in FACE_PATHS])
def test_each_fixture_photo_has_its_face_found_once(name, fixture_faces):
    image, faces = fixture_faces[name]
    face = subject(image, faces)
    expected = 2 if name in TWO_PEOPLE else 1
    assert len(faces) == expected
    assert faces == sorted(faces, key=lambda item: -item.score)
    assert face.score > 0.9
    # LFW's 250x250 photos hold faces of roughly 80-140 pixels.
    assert 60 < face.width < 170 and 60 < face.height < 190
    others = [other for other in faces if other is not face]
    assert all(overlap(np.array([face.box]), np.array([other.box]))[0, 0] < 0.1 for other in others)


@pytest.mark.parametrize("name", [path.name for path in FACE_PATHS])
def test_landmark_order_is_anatomical(name, fixture_faces):
    image, faces = fixture_faces[name]
    face = subject(image, faces)
    marks = face.landmarks
    assert marks.shape == (5, 2) and marks.dtype == np.float32
    left_eye, right_eye, nose, mouth_left, mouth_right = marks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert left_eye[0] < nose[0] < right_eye[0]
    x1, y1, x2, y2 = face.box
    assert np.all((marks[:, 0] > x1) & (marks[:, 0] < x2) & (marks[:, 1] > y1) & (marks[:, 1] < y2))


def test_landmarks_agree_with_dlib_five_points(fixture_faces, model_sources):
    """dlib's 5-point model marks the two corners of each eye and the point under the
    nose; MTCNN marks eye centres and the nose tip. Tolerances, in inter-ocular
    distances (IOD, ~40 px here): an eye centre and the midpoint of its corners differ
    by where the pupil sits (gaze, squint, head turn) plus both models' errors: on
    200 LFW photos the mean is 0.05 IOD, the 95th percentile 0.09 (see
    benchmarks/detector_choice.py). So each eye within 0.25 IOD, and 0.08 IOD on
    average: a swapped eye or a landmark from the wrong face is ~1 IOD off. The nose
    tip sits 0.1-0.35 IOD above dlib's under-nose point, so the nose must be within
    0.45 IOD and above that point."""
    dlib = pytest.importorskip("dlib")
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_sources["dlib_shape5"]))
    eye_errors, compared = [], 0
    for name, (image, faces) in fixture_faces.items():
        face = subject(image, faces)
        found = hog(image, 0)
        # dlib's predictor expects dlib's own boxes; use the HOG box over our face.
        rects = [rect for rect in found if rect.left() < face.center[0] < rect.right() and rect.top() < face.center[1] < rect.bottom()]
        if not rects:
            continue
        compared += 1
        points = np.array([[part.x, part.y] for part in predictor(image, rects[0]).parts()], dtype=np.float32)
        first, second = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
        left, right = (first, second) if first[0] < second[0] else (second, first)
        spacing = float(np.linalg.norm(right - left))
        errors = [np.linalg.norm(face.landmarks[0] - left) / spacing, np.linalg.norm(face.landmarks[1] - right) / spacing]
        assert max(errors) < 0.25, f"{name}: eyes off dlib's by {max(errors):.2f} IOD"
        assert np.linalg.norm(face.landmarks[2] - points[4]) / spacing < 0.45, name
        assert face.landmarks[2][1] < points[4][1], f"{name}: nose tip below dlib's under-nose point"
        eye_errors += errors
    assert compared >= 28, f"dlib's HOG detector found only {compared} of {len(fixture_faces)} subjects"
    assert float(np.mean(eye_errors)) < 0.08


def test_mirrored_photo_gives_mirrored_landmarks(detector, fixture_faces):
    """The order is the image's left/right, not the person's: mirroring swaps the eyes.
    The nets are not exactly mirror-symmetric (0.03-0.13 IOD apart on the fixtures),
    while a wrong order would put points ~1 IOD off: 0.2 IOD separates the two."""
    image, faces = fixture_faces["Colin_Powell_0001.jpg"]
    face = subject(image, faces)
    mirrored = detector.detect(np.ascontiguousarray(image[:, ::-1]))
    other = subject(image, mirrored)
    width = image.shape[1]
    expected = np.array([face.landmarks[i] for i in (1, 0, 2, 4, 3)])
    expected[:, 0] = width - 1 - expected[:, 0]
    assert np.abs(other.landmarks - expected).max() < 0.2 * inter_ocular(face)


def test_face_keeps_its_place_on_a_larger_canvas(detector, fixture_faces):
    image, faces = fixture_faces["Tony_Blair_0001.jpg"]
    face = subject(image, faces)
    canvas = np.full((500, 620, 3), 30, np.uint8)
    canvas[170:420, 90:340] = image
    moved = choose_main_face(detector.detect(canvas), canvas.shape)
    shift = np.array([90, 170], np.float32)
    # The pyramid's grid falls differently on the canvas, so proposals differ a little
    # (a few px); a coordinate slip, such as swapped x/y, would be off by tens of pixels.
    assert np.abs(np.array(moved.box) - np.array(face.box) - np.tile(shift, 2)).max() < 0.1 * face.width
    assert np.abs(moved.landmarks - face.landmarks - shift).max() < 0.15 * inter_ocular(face)


def test_large_photo_is_shrunk_and_mapped_back(detector, fixture_faces):
    image, faces = fixture_faces["Serena_Williams_0001.jpg"]
    face = subject(image, faces)
    large = cv2.resize(image, (1500, 1500), interpolation=cv2.INTER_CUBIC)  # 6x: over max_side
    found = subject(large, detector.detect(large))
    assert np.abs(np.array(found.box) / 6 - np.array(face.box)).max() < 0.08 * face.width
    assert np.abs(found.landmarks / 6 - face.landmarks).max() < 0.08 * inter_ocular(face)


def test_grey_and_rgba_photos_are_converted(detector, fixture_faces):
    image, faces = fixture_faces["Hugo_Chavez_0001.jpg"]
    face = subject(image, faces)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    same = subject(image, detector.detect(rgba))
    assert same.box == face.box and np.array_equal(same.landmarks, face.landmarks)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    for variant in (grey, grey[:, :, None]):
        found = subject(image, detector.detect(variant))
        assert overlap(np.array([found.box]), np.array([face.box]))[0, 0] > 0.7


# --- things that are not faces, and bad input ----------------------------------------------------


def test_uniform_images_have_no_face(detector):
    for value in (0, 128, 255):
        assert detector.detect(np.full((250, 250, 3), value, np.uint8)) == []


def test_noise_has_no_face(detector):
    for seed in range(3):
        noise = np.random.default_rng(seed).integers(0, 256, (250, 320, 3), dtype=np.uint8)
        assert detector.detect(noise) == []


def test_image_smaller_than_min_face_gives_nothing(detector, fixture_faces):
    image, _ = fixture_faces["Colin_Powell_0001.jpg"]
    assert detector.detect(image[::8, ::8]) == []  # 32x32 < min_face 40
    assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []


def test_bad_arrays_are_refused(detector):
    with pytest.raises(ImageError, match="8-bit"):
        detector.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ImageError, match="shape"):
        detector.detect(np.zeros((2, 100, 100, 3), np.uint8))
    with pytest.raises(ImageError, match="empty"):
        detector.detect(np.zeros((0, 100, 3), np.uint8))
    with pytest.raises(ImageError):
        detector.detect([[1, 2], [3, 4]])


def test_bad_settings_are_refused(engine_paths):
    engines = [load_engine(engine_paths[key], threads=1) for key in mtcnn.NETS]
    with pytest.raises(ConfigError, match="min_face"):
        MtcnnDetector(*engines, min_face=8)
    with pytest.raises(ConfigError, match="factor"):
        MtcnnDetector(*engines, factor=1.2)
    with pytest.raises(ConfigError, match="thresholds"):
        MtcnnDetector(*engines, thresholds=(0.6, 0.7))


# --- small pieces ---------------------------------------------------------------------------------


def test_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 6, 6]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.95], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [3, 1, 2]  # the small box overlaps little by IoU
    assert nms(boxes, scores, 0.5, by_smaller=True).tolist() == [3, 2]  # but lies inside box 1


def test_nms_in_blocks_equals_nms_at_once():
    rng = np.random.default_rng(4)
    corners = rng.uniform(0, 200, (700, 2))
    boxes = np.hstack([corners, corners + rng.uniform(5, 60, (700, 2))]).astype(np.float32)
    scores = rng.uniform(0, 1, 700).astype(np.float32)
    assert np.array_equal(nms(boxes, scores, 0.5, chunk=7), nms(boxes, scores, 0.5, chunk=1000))


def box_face(x1, y1, x2, y2, score=0.9) -> Face:
    return Face((float(x1), float(y1), float(x2), float(y2)), score, np.zeros((5, 2), np.float32))


def test_the_main_face_is_the_most_central_of_the_large_faces():
    small = box_face(10, 10, 40, 40, 0.99)
    big_corner = box_face(100, 100, 200, 200, 0.8)
    # A face under half the largest one's side is a bystander, however central.
    assert choose_main_face([small, big_corner], (60, 60, 3)) is big_corner
    # Among faces at least half as large as the largest, the one nearest the centre wins.
    central = box_face(260, 160, 340, 240)  # 80 px, centred in a 400x600 image
    edge = box_face(480, 140, 600, 260)  # 120 px, at the right edge
    assert choose_main_face([edge, central], (400, 600, 3)) is central
    assert choose_main_face([central, edge], (400, 600, 3)) is central
    half = box_face(280, 180, 330, 230)  # 50 px < half of 120 px: out, central or not
    assert choose_main_face([edge, half], (400, 600, 3)) is edge
    assert choose_main_face([], (60, 60)) is None


def test_the_main_face_is_chosen_among_faces_of_at_least_min_face_px():
    central = box_face(260, 160, 340, 240)  # 80 px
    edge = box_face(480, 140, 600, 260)  # 120 px
    assert choose_main_face([edge, central], (400, 600, 3), min_face_px=100) is edge
    assert choose_main_face([edge, central], (400, 600, 3), min_face_px=80) is central
    assert choose_main_face([edge, central], (400, 600, 3), min_face_px=121) is None


# --- the pipeline's main face and its detector seam --------------------------------------------------


@pytest.mark.parametrize("name", sorted(TWO_PEOPLE))
def test_the_pipeline_aligns_the_subject_of_a_photo_with_two_people(name, pipeline, fixture_faces):
    image, faces = fixture_faces[name]
    scene = pipeline.look(image)
    assert len(scene.faces) == len(faces) == 2
    assert scene.main.box == subject(image, faces).box
    assert np.array_equal(scene.main.chip, pipeline.align(image, [scene.main.face]))
    assert scene.main.face_px == min(scene.main.face.width, scene.main.face.height)
    same = pipeline.main_face(image)
    assert same.box == scene.main.box and np.array_equal(same.chip, scene.main.chip)
    assert pipeline.main_face(image, min_face_px=10_000) is None


def test_the_pipeline_runs_the_detector_the_registry_names(models_ready, monkeypatch):
    class Shifted(MtcnnDetector):
        """A second detector: MTCNN's nets with a landmark template of its own."""

        template = FITTED_TEMPLATE + 0.01

    monkeypatch.setitem(registry.DETECTORS, "shifted", Shifted)
    shifted = FacePipeline.load(threads=1, flip=False, detector="shifted")
    assert type(shifted.detector) is Shifted and shifted.template is Shifted.template
    default = FacePipeline.load(threads=1, flip=False)
    assert type(default.detector) is MtcnnDetector and isinstance(default.detector, Detector)
    assert default.template is FITTED_TEMPLATE and registry.DETECTOR_NETS == MtcnnDetector.nets
    with pytest.raises(ConfigError, match="unknown face detector 'nope'; known: mtcnn, shifted"):
        FacePipeline.load(detector="nope")


# --- searching only for faces the caller judges -------------------------------------------------


def on_canvas(image: np.ndarray, size=(640, 480), at=(200, 120)) -> np.ndarray:
    """The photo pasted on a grey camera-sized frame."""
    canvas = np.full((size[1], size[0], 3), 90, np.uint8)
    canvas[at[1]:at[1] + image.shape[0], at[0]:at[0] + image.shape[1]] = image
    return canvas


@pytest.mark.parametrize("name", [path.name for path in FACE_PATHS])
def test_a_judged_face_is_found_the_same_when_smaller_faces_are_not_searched(name, detector, fixture_faces):
    image, _ = fixture_faces[name]
    frame = on_canvas(image)
    every = choose_main_face(detector.detect(frame), frame.shape, 80)
    judged = choose_main_face(detector.detect(frame, smallest=80), frame.shape, 80)
    assert every is not None and judged is not None
    # The levels still scanned hold the same pixels, so the face comes out the same; only a candidate
    # from a skipped level could have won a suppression (2 of 1,050 camera frames moved a little).
    assert np.abs(np.array(judged.box) - np.array(every.box)).max() < 0.05 * every.width
    assert np.abs(judged.landmarks - every.landmarks).max() < 0.05 * inter_ocular(every)


def test_most_judged_faces_come_out_identical(detector, fixture_faces):
    same = 0
    for image, _ in fixture_faces.values():
        frame = on_canvas(image)
        every = choose_main_face(detector.detect(frame), frame.shape, 80)
        judged = choose_main_face(detector.detect(frame, smallest=80), frame.shape, 80)
        same += every.box == judged.box and np.array_equal(every.landmarks, judged.landmarks)
    assert same >= len(fixture_faces) - 1


def test_the_finest_level_is_not_scanned_when_only_larger_faces_count(detector, fixture_faces, monkeypatch):
    image, _ = fixture_faces["Tony_Blair_0001.jpg"]
    frame = on_canvas(image)
    scanned = []
    scan = detector.scan
    monkeypatch.setattr(detector, "scan", lambda level, sx, sy: scanned.append(level.shape[:2]) or scan(level, sx, sy))
    detector.detect(frame)
    every = list(scanned)
    scanned.clear()
    detector.detect(frame, smallest=80)
    largest = (144, 192)  # 640x480 at 12/40: the level of 40 px faces
    assert max(every) == largest and largest not in scanned
    assert sorted(scanned) == sorted(shape for shape in every if shape != largest)


def test_smallest_is_in_pixels_of_the_image_not_of_the_shrunk_one(detector, fixture_faces):
    # A 1280x960 frame is searched at 640x480: a face of ~90 px there is ~45 px in the working image,
    # and must still be searched for when the caller judges faces of 80 px.
    image, faces = fixture_faces["Tony_Blair_0001.jpg"]
    scale = 90.0 / subject(image, faces).width
    frame = on_canvas(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), size=(1280, 960))
    found = choose_main_face(detector.detect(frame, smallest=80), frame.shape, 80)
    assert found is not None and 80 <= found.width < 110


def test_only_the_finest_levels_are_left_out(detector):
    from edge.vision.mtcnn import Octaves

    levels = detector.levels(Octaves(np.zeros((480, 640, 3), np.uint8)))
    windows = [12.0 / level[1] for level in levels]  # the face size each level finds, in px
    assert windows[0] == pytest.approx(40.0, rel=0.02)
    kept = MtcnnDetector.searched(levels, 80.0)
    # the 40 px level goes; the 56 px one stays, a level below 80 px; the levels kept are the same arrays
    assert len(kept) == len(levels) - 1 and all(a is b for a, b in zip(kept, levels[1:]))
    assert all(a is b for a, b in zip(MtcnnDetector.searched(levels, 0.0), levels))
    assert len(MtcnnDetector.searched(levels, 0.0)) == len(levels)


def test_the_pipeline_searches_only_for_faces_it_may_choose(pipeline, fixture_faces, monkeypatch):
    asked = []
    detect = pipeline.detector.detect
    monkeypatch.setattr(pipeline.detector, "detect", lambda image, smallest=0.0: asked.append(smallest) or detect(image, smallest))
    image, _ = fixture_faces["Tony_Blair_0001.jpg"]
    pipeline.look(image, 80)
    pipeline.look(image)
    assert asked == [80, 0.0]
