"""Tile a few frames of a rendered video side by side into one PNG (README's demo figure).

    python tools/demo_frames.py VIDEO.mp4 --frames 4 12 20 --scale 3 --out benchmarks/demo.png
"""
import argparse
import os
import sys

import cv2
import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--frames", nargs="+", type=int, default=[4, 12, 20])
    ap.add_argument("--scale", type=int, default=3, help="nearest-neighbour enlargement")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        sys.exit("cannot open video {}".format(args.video))
    wanted, tiles, i = set(args.frames), {}, 0
    while len(tiles) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            tiles[i] = cv2.resize(frame, None, fx=args.scale, fy=args.scale,
                                  interpolation=cv2.INTER_NEAREST)
        i += 1
    cap.release()
    missing = sorted(wanted - set(tiles))
    if missing:
        sys.exit("{} has {} frames; frames {} are missing".format(args.video, i, missing))
    tmp = args.out + ".tmp.png"
    if not cv2.imwrite(tmp, np.concatenate([tiles[f] for f in args.frames], axis=1)):
        sys.exit("cannot write {}".format(args.out))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
