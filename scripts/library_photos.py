"""Copy the natural photos that ship inside scikit-image and matplotlib into a folder: a held-out set
on any machine with srx installed (no model was trained or chosen on them; nothing downloads).

    python scripts/library_photos.py runs/photos
    srx eval --data runs/photos --scale 3 -w camera --degrade jpeg50
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srx.errors import SrxError
from srx.samples import write_library_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the photos (created)")
    args = parser.parse_args()
    try:
        copies = write_library_photos(args.out)
    except (SrxError, OSError) as exc:
        sys.exit(f"error: {exc}")
    print(f"{len(copies)} photos in {args.out}: {', '.join(p.stem for p in copies)}")


if __name__ == "__main__":
    main()
