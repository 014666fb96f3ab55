"""Write a CelebA-style labels file for a NUAA-style folder: `live` and `Eyeglasses`.

    python benchmarks/nuaa_labels.py ../shared/datasets/nuaa_train > nuaa_labels.csv
    edge-verify train attributes --data ../shared/datasets/nuaa_train --labels nuaa_labels.csv

It exercises the multi-attribute path (labels file, one head and threshold per
attribute) on real photos. `live` is 1 under real/ and -1 under fake/.
`Eyeglasses` comes from the file name's second field: looking at the frames,
01 is *with* glasses and 00 without (the dataset README states the reverse;
subject 0007, the only one filmed both ways, settles it). A printed photo of a
person with glasses shows glasses, so fake frames keep the label.
"""
from __future__ import annotations

import sys
from pathlib import Path

GLASSES = {"01": 1, "00": -1}


def label_rows(root: Path):
    from edge_build.training.attribute_data import images_under  # the images `train attributes` would read

    for folder, live in (("real", 1), ("fake", -1)):
        for path in images_under(root / folder):
            fields = path.stem.split("_")
            glasses = GLASSES.get(fields[1], 0) if len(fields) > 1 else 0  # 0: unknown, left out of that head
            yield path.relative_to(root).as_posix(), live, glasses


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    print("image,live,Eyeglasses")
    for name, live, glasses in label_rows(Path(argv[0])):
        print(f"{name},{live},{glasses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
