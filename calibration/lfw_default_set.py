"""Write the default INT8 calibration set: LFW people who appear in no scored pair.

    python -m edge_calibration.lfw_default_set --lfw ../shared/datasets/lfw --out lfw-calibration.txt \
        [--link-dir DIR] [--held-out-dir DIR --held-out-count 300] [--allow-view1]

Counts it and prints them. By default the set excludes everyone named in View 2
(pairs.txt, the reported figure) AND in View 1 (pairsDevTrain/DevTest, where the
threshold is chosen): calibrating on them would leak into a number we report or
a parameter we choose. ``--allow-view1`` keeps View 1 people (the larger set).
``--link-dir`` makes a folder of symlinks to pass as ``--calibration``;
``--held-out-dir`` makes one of held-out faces (first photo of View 2 people)
for the accuracy gate, disjoint from the calibration set by construction.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

VIEW2 = ("pairs.txt",)
VIEW1 = ("pairsDevTrain.txt", "pairsDevTest.txt")


def people_in_pairs(path: Path) -> set[str]:
    """Names on the pair lines of an LFW pairs file (header line skipped)."""
    names: set[str] = set()
    for line in path.read_text().splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) == 3:
            names.add(fields[0])
        elif len(fields) == 4:
            names.update((fields[0], fields[2]))
    return names


def excluded_people(lfw: Path, allow_view1: bool = False) -> set[str]:
    files = VIEW2 if allow_view1 else VIEW2 + VIEW1
    missing = [name for name in files if not (lfw / name).exists()]
    if missing:
        raise SystemExit(f"{lfw} lacks {', '.join(missing)}: is it the LFW folder (README in shared/datasets/lfw)?")
    return set().union(*(people_in_pairs(lfw / name) for name in files))


def default_set(lfw: Path, allow_view1: bool = False) -> tuple[list[str], list[Path]]:
    """(people, images) of the calibration set, both sorted."""
    excluded = excluded_people(lfw, allow_view1)
    people = sorted(p.name for p in (lfw / "images").iterdir() if p.is_dir() and p.name not in excluded)
    images = [image for person in people for image in sorted((lfw / "images" / person).glob("*.jpg"))]
    return people, images


def held_out_set(lfw: Path, count: int) -> list[Path]:
    """First photo of the first ``count`` View 2 people (sorted): never in the calibration set."""
    people = sorted(people_in_pairs(lfw / "pairs.txt"))[:count]
    return [sorted((lfw / "images" / person).glob("*.jpg"))[0] for person in people]


def link_folder(images: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:
        target = folder / image.name
        if not target.exists():
            os.symlink(image.resolve(), target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder with images/ and the pairs files")
    parser.add_argument("--out", type=Path, help="write the image list here (paths relative to --lfw)")
    parser.add_argument("--link-dir", type=Path, help="make a folder of symlinks to the calibration images")
    parser.add_argument("--held-out-dir", type=Path, help="make a folder of symlinks to held-out gate faces")
    parser.add_argument("--held-out-count", type=int, default=300, help="held-out faces (default 300)")
    parser.add_argument("--allow-view1", action="store_true", help="keep people of pairsDevTrain/DevTest (View 1)")
    args = parser.parse_args(argv)
    people, images = default_set(args.lfw, args.allow_view1)
    print(f"calibration set: {len(people)} people, {len(images)} images "
          f"(excluding {'View 2' if args.allow_view1 else 'View 1 and View 2'} people)")
    if args.out:
        args.out.write_text("".join(f"{p.relative_to(args.lfw).as_posix()}\n" for p in images))
        print(f"list written to {args.out}")
    if args.link_dir:
        link_folder(images, args.link_dir)
        print(f"symlinks in {args.link_dir}")
    if args.held_out_dir:
        held = held_out_set(args.lfw, args.held_out_count)
        link_folder(held, args.held_out_dir)
        print(f"held-out faces: {len(held)} images in {args.held_out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
