#!/usr/bin/python3
"""Three linked rings in 3-D: a seeded 3-class problem for `diffeoflow train --train-data`.

Class k is a circle of radius 1 with Gaussian noise: ring 0 in the xy-plane around the origin,
ring 1 in the xz-plane around (1, 0, 0), ring 2 in the xy-plane around (2.5, 0, 0). Ring 1 passes
through the holes of rings 0 and 2: a chain of three links that no plane separates (not one of
diffeoflow's built-in generators). Writes train_x.npy (N x 3 float32), train_y.npy (N int64) and the same for
test into OUT.

    scripts/make_linked_rings.py OUT [--train 3000] [--test 1000] [--noise 0.12] [--seed 7]
"""
import argparse
import os

import numpy as np


def rings(n, noise, rng):
    labels = np.arange(n) % 3
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    c, s = np.cos(phi), np.sin(phi)
    x = np.empty((n, 3))
    zero = np.zeros(n)
    layouts = [
        (np.stack([c, s, zero], 1), [0.0, 0.0, 0.0]),   # xy-plane
        (np.stack([c, zero, s], 1), [1.0, 0.0, 0.0]),   # xz-plane, through ring 0's hole
        (np.stack([c, s, zero], 1), [2.5, 0.0, 0.0]),   # xy-plane, ring 1 through its hole
    ]
    for k, (points, centre) in enumerate(layouts):
        mask = labels == k
        x[mask] = points[mask] + np.array(centre)
    x += rng.normal(0.0, noise, x.shape)
    return x.astype(np.float32), labels.astype(np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.12)
    parser.add_argument("--seed", type=int, default=7)
    a = parser.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for split, n in (("train", a.train), ("test", a.test)):
        x, y = rings(n, a.noise, rng)
        np.save(os.path.join(a.out, split + "_x.npy"), x)
        np.save(os.path.join(a.out, split + "_y.npy"), y)


if __name__ == "__main__":
    main()
