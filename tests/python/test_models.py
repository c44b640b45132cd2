"""Classifiers through the module: training to a target accuracy, inspect() against `diffeoflow
inspect`, progress through logging, and bad input raising what the command line reports."""
import json
import logging
import os
import re
import subprocess

import numpy as np
import pytest

import diffeoflow

CLI = os.environ.get("DIFFEOFLOW_CLI", "")
needs_cli = pytest.mark.skipif(not CLI, reason="DIFFEOFLOW_CLI not set")


@pytest.fixture(scope="module")
def spirals(tmp_path_factory):
    """The two spirals, trained to convergence in about three seconds (fixed seed, one thread)."""
    out = tmp_path_factory.mktemp("spirals") / "run"
    return diffeoflow.train("spirals", samples=1000, epochs=60, seed=1, threads=1, quiet=True,
                            out=out)


def test_spirals_reach_99_percent(spirals):
    assert spirals.metrics["test_accuracy"] >= 0.99
    assert spirals.metrics["epochs"] == 60


def test_inspect(spirals):
    g = diffeoflow.inspect(spirals, resolution=24)
    assert g["resolution"] == 24 and g["dataset"] == "spirals"
    assert g["volume_element"].shape == (24, 24)
    assert g["probabilities"].shape == (24, 24, 2)
    np.testing.assert_allclose(g["probabilities"].sum(axis=2), 1.0, atol=1e-12)
    assert np.all(g["volume_element"] > 0)
    assert g["test_points"].shape == (len(g["test_labels"]), 2)
    assert g["ellipse_metrics"].shape == (len(g["ellipse_centres"]), 2, 2)
    assert g["accuracy"] >= 0.99
    # Row j is y index j: the probability at grid point (i, j) is the model's at
    # (x_i, y_j), with x along axis 1.
    x = np.linspace(g["grid_min"][0], g["grid_max"][0], 24)
    y = np.linspace(g["grid_min"][1], g["grid_max"][1], 24)
    np.testing.assert_allclose(spirals.predict_proba(np.array([[x[3], y[17]]]))[0],
                               g["probabilities"][17, 3], atol=1e-12)
    with pytest.raises(ValueError, match=r"--resolution must be in \[8, 2048\] \(got 4\)"):
        diffeoflow.inspect(spirals, resolution=4)


@needs_cli
def test_inspect_equals_the_command_line(spirals, tmp_path):
    subprocess.run([CLI, "inspect", "--model", spirals.path, "--out", str(tmp_path),
                    "--resolution", "24", "--quiet"], check=True)
    g = diffeoflow.inspect(spirals.path, resolution=24)
    np.testing.assert_array_equal(np.load(tmp_path / "volume_element.npy"), g["volume_element"])
    np.testing.assert_array_equal(np.load(tmp_path / "probabilities.npy"), g["probabilities"])
    with open(tmp_path / "geometry.json") as f:
        for key, value in json.load(f).items():
            assert g[key] == value, key


def test_progress_goes_to_logging(caplog, capfd):
    with caplog.at_level(logging.INFO, logger="diffeoflow"):
        diffeoflow.train("spirals", samples=200, epochs=2, threads=1)
        image = np.zeros((24, 20))
        image[6:14, 6:12] = 1.0
        diffeoflow.register(image, np.roll(image, 1, 0), levels=1, iterations=2, threads=1,
                            affine="none")
    lines = [r.getMessage() for r in caplog.records if r.name == "diffeoflow"]
    assert any(line.startswith("epoch 1/2 ") for line in lines)
    assert any(line.startswith("epoch 2/2 ") for line in lines)
    assert any(line.startswith("level 1/1  iteration   1") for line in lines)
    assert "epoch" not in capfd.readouterr().err  # nothing drawn on the terminal
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="diffeoflow"):
        diffeoflow.train("spirals", samples=200, epochs=1, threads=1, quiet=True)
    assert not caplog.records


def same_message(python, cli):
    """The module names an argument as Python does (fixed=) where the CLI names its flag
    (--fixed); otherwise the messages are the same."""
    return re.sub(r"--(?=\w)", "", python) == re.sub(r"--(?=\w)", "", cli)


def cli_error(args):
    """The message `diffeoflow ARGS` prints after "diffeoflow: error: " (exit status 2)."""
    done = subprocess.run([CLI] + args, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    prefix = "diffeoflow: error: "
    assert done.stderr.startswith(prefix), done.stderr
    return done.stderr[len(prefix):].strip()


@needs_cli
def test_bad_input_gets_the_command_line_message(tmp_path, spirals):
    image = np.zeros((16, 12))
    image[4:9, 3:8] = 1.0
    path = str(tmp_path / "image.npy")
    np.save(path, np.ascontiguousarray(image.T))
    missing = str(tmp_path / "missing.nii.gz")
    cases = [
        (ValueError, lambda: diffeoflow.register(image, image, alpha=-1),
         ["register", "--fixed", path, "--moving", path, "--out", str(tmp_path / "o"),
          "--alpha", "-1"]),
        (FileNotFoundError, lambda: diffeoflow.register(missing, path),
         ["register", "--fixed", missing, "--moving", path, "--out", str(tmp_path / "o")]),
        (ValueError, lambda: diffeoflow.inspect(spirals, resolution=4),
         ["inspect", "--model", spirals.path, "--out", str(tmp_path / "i"), "--resolution",
          "4"]),
    ]
    for error, call, args in cases:
        with pytest.raises(error) as caught:
            call()
        assert same_message(str(caught.value), cli_error(args)), (str(caught.value), args)
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "i")


def test_missing_files_and_wrong_types(tmp_path, spirals):
    for call in (lambda: diffeoflow.load_image(str(tmp_path / "none.nii.gz")),
                 lambda: diffeoflow.load_model(str(tmp_path / "none.h5")),
                 lambda: diffeoflow.inspect(tmp_path / "none.h5"),
                 lambda: diffeoflow.apply(str(tmp_path / "none"), np.zeros((4, 4)))):
        with pytest.raises(FileNotFoundError, match="none"):
            call()
    with pytest.raises(TypeError, match="moving: expected a NumPy array or a path, got dict"):
        diffeoflow.register(np.zeros((8, 8)), {})
    with pytest.raises(TypeError, match="x: expected a real-valued NumPy array"):
        spirals.predict_proba("not an array")
