"""docs/python.md's examples run as written: each ```python block in an empty folder, with
matplotlib drawing to files (MPLBACKEND=Agg), and the figures it saves exist afterwards."""
import os
import re
import subprocess
import sys

import pytest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "python.md")


def blocks():
    with open(DOC) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), flags=re.S | re.M)


def test_the_document_has_the_three_examples():
    assert len(blocks()) == 3


@pytest.mark.parametrize("index", range(3))
def test_example_runs(index, tmp_path):
    code = blocks()[index]
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for figure in re.findall(r'savefig\("([^"]+)"\)', code):
        assert (tmp_path / figure).stat().st_size > 0, figure
