#!/usr/bin/python3
"""Fashion-MNIST's IDX files as .npy: {train,test}_x.npy (N x 28 x 28 uint8), {train,test}_y.npy.

    scripts/fashion_mnist_to_npy.py OUT [--data-dir /usr/share/datasets/fashion-mnist]

`diffeoflow train --train-data OUT/train_x.npy ...` then sees exactly the pixels of
`train --dataset fashion-mnist` (uint8 images are scaled by 1/255 in both).
"""
import argparse
import gzip
import os

import numpy as np


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SystemExit(path + ": not an IDX file of unsigned bytes")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    a = parser.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        for kind, idx in (("x", "images-idx3"), ("y", "labels-idx1")):
            stem = os.path.join(a.data_dir, prefix + "-" + idx + "-ubyte")
            path = stem + ".gz" if os.path.exists(stem + ".gz") else stem
            np.save(os.path.join(a.out, split + "_" + kind + ".npy"), read_idx(path))


if __name__ == "__main__":
    main()
