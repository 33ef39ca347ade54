"""docs/architecture.md's examples run as written: the new estimator and optimizer pass noisygrad.testing, the
new experiment returns a passing finding."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs/architecture.md"


def test_the_architecture_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    namespace: dict[str, object] = {}
    for block in blocks:  # the estimator and the optimizer check themselves with noisygrad.testing
        exec(compile(block, str(DOC), "exec"), namespace)
    findings = namespace["coin"](seed=0)
    assert len(findings) == 1
    assert findings[0].passed
