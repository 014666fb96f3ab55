"""Benchmark: the gallery at site scale, on one CPU core.

    python benchmarks/gallery_scale.py search [--sizes 10000 100000 1000000] [--probes 40] [--like EMBEDDINGS.npz]
    python benchmarks/gallery_scale.py gallery --dir DIR [--people 10000] [--per-person 5] \
        [--enroll 10] [--photo tests/fixtures/faces/Colin_Powell_0001.jpg]

``search`` times the product's 1:N search (edge.gallery.search.search) over random
unit 128-d float32 templates, 5 per person: on the matrix prepared once
(edge.gallery.search.prepare, as the daemon does at each load; "prepared"), on
the plain matrix ("plain", the block-wise search that computes the norms per
probe), and the direct reference (search_directly: every distance from the
differences, min per person, the code before the block-wise search); it checks
that all three give the same Match for every probe. Half the probes are random
unit vectors, half an enrolled template plus noise; "prepared" is also given for
each half. "floor" is one matrix-vector product over the same matrix: reading it
from memory once. The load average (os.getloadavg) is printed with each size.
Random unit templates have no dominant axes, so the prepared search never uses
its lower-bound prune on them; with --like (an .npz whose ``embeddings`` holds
real embeddings, e.g. the cache of benchmarks/identification.py) the templates
and the random half of the probes are drawn from a Gaussian with those
embeddings' mean and covariance, then scaled to unit length: face-like spread.
The near half is then split: an enrolled template plus isotropic noise (which
lies mostly off the principal axes, so the prune rarely helps), and an enrolled
template plus a *within-person* difference drawn from the file's own people
(the covariance of two photos of one person minus each other, from the people
in ``names`` with two or more rows: what another photo of an enrolled person
looks like); each is timed apart.

``gallery`` fills a real SQLite gallery (encrypted templates, audit log) through
Gallery.add_person_templates, one transaction per person, or reuses the one in DIR;
then, each in a fresh process: open + load_matrix (the daemon's start) with its
peak RSS, the daemon's reload (version() + load_matrix() on the open gallery; then
edge.gallery.search.prepare, timed apart), and
enrollment of --enroll new people into a copy of the gallery, timed as enrollment
spends it with the face pipeline left out: load the gallery, the duplicate search
(one 1:N search per enrollment frame), the add transaction. With --photo, one
photo's detect + align + embed is timed separately (needs the models home).

The whole script runs single-threaded (BLAS and OpenMP pools of one thread) and
pinned to one core (--cpu); it re-executes itself to set that up.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.gallery.crypto import create_key
from edge.gallery.search import prepare, search, search_directly
from edge.gallery.store import Gallery
from edge.pipeline import FacePipeline
from edge.vision.image import load_image

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
DIM = 128
MODEL = "dlib_resnet_v1"


def single_core(cpu: int) -> None:
    """Re-run this script with one-thread pools, pinned to ``cpu``: the BLAS pool is sized when numpy
    loads, so the environment must be set before the interpreter starts."""
    os.sched_setaffinity(0, {cpu})
    if any(os.environ.get(name) != value for name, value in ONE_THREAD.items()):
        os.environ.update(ONE_THREAD)
        os.execv(sys.executable, [sys.executable, *sys.argv])


def summary_ms(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"median_ms": round(statistics.median(ordered) * 1e3, 3),
            "p95_ms": round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] * 1e3, 3),
            "min_ms": round(ordered[0] * 1e3, 3), "runs": len(ordered)}


def unit_rows(rng, count: int):
    rows = rng.standard_normal((count, DIM), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


# ---- search ------------------------------------------------------------------------------------------

def real_embeddings(path: Path) -> np.ndarray:
    """The finite rows of the file's ``embeddings`` (only those marked ``found``, where it says)."""
    stored = np.load(path)
    embeddings = stored["embeddings"].astype(np.float64)
    if "found" in stored.files:
        embeddings = embeddings[stored["found"]]
    return embeddings[np.all(np.isfinite(embeddings), axis=1)]


def face_like_rows(embeddings: np.ndarray):
    """A function drawing unit rows from a Gaussian with the mean and covariance of ``embeddings``."""
    mean = embeddings.mean(axis=0)
    factor = np.linalg.cholesky(np.cov(embeddings.T) + 1e-9 * np.eye(embeddings.shape[1]))

    def draw(rng, count: int) -> np.ndarray:
        rows = (mean + rng.standard_normal((count, len(mean))) @ factor.T).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return draw


def within_person_differences(path: Path):
    """A function drawing differences between two photos of one person, from a Gaussian with the covariance
    of such differences among the file's people (``names`` as person/photo paths), or None without names."""
    stored = np.load(path)
    if "names" not in stored.files:
        return None
    embeddings, names = stored["embeddings"].astype(np.float64), stored["names"]
    keep = stored["found"] if "found" in stored.files else np.ones(len(names), bool)
    people: dict = {}
    for name, vector in zip(names[keep], embeddings[keep]):
        people.setdefault(str(name).split("/")[0], []).append(vector / np.linalg.norm(vector))
    deviations = [vector - np.mean(rows, axis=0) for rows in people.values() if len(rows) >= 2 for vector in rows]
    # a photo minus another photo of the same person: twice the spread about the person's mean
    factor = np.linalg.cholesky(2.0 * np.cov(np.array(deviations).T) + 1e-9 * np.eye(embeddings.shape[1]))

    def draw(rng, count: int) -> np.ndarray:
        return (rng.standard_normal((count, factor.shape[0])) @ factor.T).astype(np.float32)
    return draw


def search_benchmark(sizes: list[int], probes: int, per_person: int, seed: int, like: Path | None) -> list[dict]:
    rng = np.random.default_rng(seed)
    draw = unit_rows if like is None else face_like_rows(real_embeddings(like))
    differences = None if like is None else within_person_differences(like)
    rows = []
    for size in sizes:
        matrix = draw(rng, size)
        index = np.arange(size, dtype=np.intp) // per_person
        names = [f"person {n:07d}" for n in range(int(index[-1]) + 1)]
        near_count = probes // 2
        same_count = near_count // 2 if differences is not None else 0
        near = matrix[rng.integers(0, size, near_count - same_count)] + \
            rng.normal(0, 0.03, (near_count - same_count, DIM)).astype(np.float32)
        groups = [draw(rng, probes - near_count), near]
        if same_count:
            groups.append(matrix[rng.integers(0, size, same_count)] + differences(rng, same_count))
        queries = np.concatenate([groups[0]] + [group / np.linalg.norm(group, axis=1, keepdims=True)
                                                for group in groups[1:]])
        started = time.perf_counter()
        prepared = prepare(matrix)
        prepare_s = time.perf_counter() - started
        timings = {"prepared": [], "plain": [], "reference": [], "floor": []}
        mismatches = 0
        search(prepared, index, names, queries[0])  # warm-up: page the matrix in
        calls = (("prepared", lambda: search(prepared, index, names, probe)),
                 ("plain", lambda: search(matrix, index, names, probe)),
                 ("reference", lambda: search_directly(matrix, index, names, probe)),
                 ("floor", lambda: matrix @ probe))
        for number, probe in enumerate(queries):
            # alternate, so a busy machine slows all of them alike, and rotate which goes first: the
            # one after the reference (which writes a matrix-sized array) finds none of the matrix cached
            results = {}
            for label, call in calls[number % 4:] + calls[:number % 4]:
                start = time.perf_counter()
                results[label] = call()
                timings[label].append(time.perf_counter() - start)
            mismatches += not results["prepared"] == results["plain"] == results["reference"]
        half, same = len(queries) - near_count, len(queries) - same_count
        rows.append({"templates": size, "people": len(names), "probes": len(queries), "mismatches": int(mismatches),
                     "templates_drawn": "random unit" if like is None else f"face-like, from {like}",
                     "pruning": prepared.projection is not None,
                     "load_average": os.getloadavg()[0], "prepare_ms": round(prepare_s * 1e3, 1),
                     **{label: summary_ms(values) for label, values in timings.items()},
                     "prepared_random_probes": summary_ms(timings["prepared"][:half]),
                     "prepared_near_probes": summary_ms(timings["prepared"][half:same]),
                     **({"prepared_same_person_probes": summary_ms(timings["prepared"][same:])} if same_count else {})})
        row = rows[-1]
        print(f"{size:>9,} templates (load {row['load_average']:.1f}): prepared {row['prepared']['median_ms']:.2f} ms "
              f"median (p95 {row['prepared']['p95_ms']:.2f}; random probes {row['prepared_random_probes']['median_ms']:.2f}, "
              f"near {row['prepared_near_probes']['median_ms']:.2f}"
              + (f", same person {row['prepared_same_person_probes']['median_ms']:.2f}" if same_count else "")
              + f"), plain {row['plain']['median_ms']:.2f} ms, "
              f"reference {row['reference']['median_ms']:.2f} ms, floor {row['floor']['median_ms']:.2f} ms, "
              f"prepare {row['prepare_ms']:.1f} ms{', pruning' if row['pruning'] else ''}; "
              f"results differ on {mismatches} of {len(queries)} probes",
              file=sys.stderr)
        del matrix, prepared
    return rows


# ---- gallery: fill, load, reload, enroll -------------------------------------------------------------

def gallery_files(folder: Path) -> tuple[Path, Path]:
    return folder / "gallery.sqlite", folder / "gallery.key"


def fill_gallery(folder: Path, people: int, per_person: int, seed: int) -> dict:
    """A gallery of ``people`` people x ``per_person`` random unit templates, made through the normal add API."""
    path, key_path = gallery_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = create_key(key_path)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with Gallery.create(path, key, actor="gallery_scale") as gallery:
        for number in range(people):
            gallery.add_person_templates(f"person {number:06d}", unit_rows(rng, per_person), MODEL, "gallery_scale")
            if (number + 1) % 1000 == 0:
                print(f"  filled {number + 1:,} of {people:,} people", file=sys.stderr)
    seconds = time.perf_counter() - started
    return {"people": people, "per_person": per_person, "seconds": round(seconds, 1),
            "ms_per_person": round(seconds / people * 1e3, 2), "file_mb": round(path.stat().st_size / 2**20, 1)}


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_load(folder: Path, repeats: int) -> dict:
    """In a fresh process: open + load_matrix, its peak RSS, then the daemon's reload."""
    path, key_path = gallery_files(folder)
    np.zeros(1)  # numpy's own start-up is not the gallery's
    before_kb = memory_kb("VmRSS")
    started = time.perf_counter()
    gallery = Gallery.open(path, key_path.read_bytes())
    names, index, matrix = gallery.load_matrix(MODEL)
    load_s = time.perf_counter() - started
    peak_kb, after_kb = memory_kb("VmHWM"), memory_kb("VmRSS")
    reload_s, prepare_s = [], []
    for _ in range(repeats):
        del names, index, matrix
        started = time.perf_counter()
        gallery.version()
        names, index, matrix = gallery.load_matrix(MODEL)
        reload_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        prepare(matrix)  # what the daemon does with it next
        prepare_s.append(time.perf_counter() - started)
    gallery.close()
    return {"people": len(names), "templates": int(len(matrix)), "matrix_mb": round(matrix.nbytes / 2**20, 1),
            "load_ms": round(load_s * 1e3, 1), "reload": summary_ms(reload_s), "prepare": summary_ms(prepare_s),
            "rss_before_mb": round(before_kb / 1024, 1), "rss_peak_mb": round(peak_kb / 1024, 1),
            "rss_after_mb": round(after_kb / 1024, 1), "peak_minus_before_mb": round((peak_kb - before_kb) / 1024, 1)}


def measure_enroll(folder: Path, count: int, per_person: int, seed: int) -> dict:
    """Enroll ``count`` new people into a copy of the gallery: load, duplicate search, add; per person."""
    path, key_path = gallery_files(folder)
    scratch = folder / "enroll-copy"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    copy = scratch / path.name
    shutil.copy2(path, copy)
    shutil.copy2(path.with_suffix(".audit.jsonl"), copy.with_suffix(".audit.jsonl"))
    rng = np.random.default_rng(seed + 1)
    with Gallery.open(copy, key_path.read_bytes()) as gallery:
        enrolled = len(gallery.list_people())
    parts: dict[str, list[float]] = {"load": [], "duplicate_search": [], "add": [], "total": []}
    with Gallery.open(copy, key_path.read_bytes()) as gallery:
        for number in range(count):
            frames = unit_rows(rng, per_person)
            t0 = time.perf_counter()
            names, index, matrix = gallery.load_matrix(MODEL)
            t1 = time.perf_counter()
            for frame in frames:
                search(matrix, index, names, frame)
            t2 = time.perf_counter()
            gallery.add_person_templates(f"new person {number:04d}", frames, MODEL, "gallery_scale")
            t3 = time.perf_counter()
            for label, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                parts[label].append(seconds)
    shutil.rmtree(scratch)
    return {"people_enrolled": count, "frames_per_person": per_person, "gallery_people_before": enrolled,
            **{label: summary_ms(values) for label, values in parts.items()}}


def measure_photo(photo: Path, repeats: int) -> dict:
    """One photo through the product's face pipeline (detect, align, flip-averaged embed), one thread."""
    pipeline = FacePipeline.load(threads=1)
    image = load_image(photo)
    pipeline.describe(image)  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        pipeline.describe(image)
        seconds.append(time.perf_counter() - started)
    return {"photo": str(photo), **summary_ms(seconds)}


def in_fresh_process(part: str, args: argparse.Namespace) -> dict:
    """Run one measurement in a new interpreter, so peak memory and caches are its own."""
    command = [sys.executable, __file__, "_part", part, "--dir", str(args.dir), "--cpu", str(args.cpu),
               "--per-person", str(args.per_person), "--enroll", str(args.enroll), "--repeats", str(args.repeats),
               "--seed", str(args.seed)] + (["--photo", str(args.photo)] if args.photo else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout)


def gallery_benchmark(args: argparse.Namespace) -> dict:
    path, _ = gallery_files(args.dir)
    figures = {}
    if path.exists():
        print(f"reusing the gallery in {args.dir}", file=sys.stderr)
    else:
        print(f"filling a gallery of {args.people:,} people x {args.per_person} templates in {args.dir}", file=sys.stderr)
        figures["fill"] = fill_gallery(args.dir, args.people, args.per_person, args.seed)
    figures["load"] = in_fresh_process("load", args)
    figures["enroll"] = in_fresh_process("enroll", args)
    if args.photo:
        figures["photo"] = in_fresh_process("photo", args)
    return figures


def run_part(args: argparse.Namespace) -> dict:
    if args.part == "load":
        return measure_load(args.dir, args.repeats)
    if args.part == "enroll":
        return measure_enroll(args.dir, args.enroll, args.per_person, args.seed)
    return measure_photo(args.photo, args.repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    searching = commands.add_parser("search", help="1:N search time at several gallery sizes")
    searching.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    searching.add_argument("--probes", type=int, default=40)
    searching.add_argument("--like", type=Path, help="draw face-like templates from the spread of these embeddings "
                                                     "(.npz with an 'embeddings' array)")
    filling = commands.add_parser("gallery", help="load, reload and enrollment time of a real gallery")
    part = commands.add_parser("_part", help=argparse.SUPPRESS)
    part.add_argument("part", choices=["load", "enroll", "photo"])
    for sub in (filling, part):
        sub.add_argument("--dir", type=Path, required=True, help="folder for the gallery (reused when it exists)")
        sub.add_argument("--people", type=int, default=10_000)
        sub.add_argument("--enroll", type=int, default=10, help="new people to time enrollment with")
        sub.add_argument("--repeats", type=int, default=5)
        sub.add_argument("--photo", type=Path, help="time this photo through the face pipeline too")
    for sub in (searching, filling, part):
        sub.add_argument("--per-person", type=int, default=5)
        sub.add_argument("--cpu", type=int, default=0, help="the core to run on")
        sub.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    single_core(args.cpu)
    if args.command == "_part":
        print(json.dumps(run_part(args)))
        return 0
    if args.command == "search":
        figures = {"search": search_benchmark(args.sizes, args.probes, args.per_person, args.seed, args.like)}
    else:
        figures = gallery_benchmark(args)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
