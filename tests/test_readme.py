"""The README's core example runs as written (it is the first thing a newcomer copies)."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_core_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md lost its python example"
    monkeypatch.chdir(tmp_path)  # the example saves a checkpoint file
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    # what the example claims: resuming continues the run, SVRG converges at a constant step
    assert namespace["rest"].nit == 200
    w_star = torch.linalg.lstsq(namespace["X"], namespace["y"].unsqueeze(1)).solution.squeeze(1)
    assert float((namespace["fit"].x - w_star).norm()) < 1e-8
    assert namespace["res"].x[0] == 0.5
