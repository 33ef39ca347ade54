"""The built documentation, looked at in a headless browser: the index, a guide and an API page render with their
text, and their screenshots are real pictures (not empty, not blank).

The pages are ``$NOISYGRAD_DOCS_HTML`` when set (``make docs-browser`` points it at ``make docs``'s output);
otherwise the test builds them itself with the same configuration, the gallery's examples not executed (their
output is the one thing it leaves out). The browser is Debian's ``chromium-headless-shell`` (or a ``chromium``
on the PATH): ``apt-get install chromium-headless-shell``, which ``.ci/docs-browser-setup`` runs in CI. Without a
browser the test is skipped, except where ``NOISYGRAD_REQUIRE_BROWSER=1`` (set by ``.ci/run`` once the setup
succeeded), where it fails. Screenshots are kept in
``$NOISYGRAD_DOCS_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
#: page -> text its rendered DOM must hold
PAGES = {
    "index.html": ["noisygrad", "Install", "Quickstart", "API reference"],
    "guides/quantum.html": ["SPSA in Qiskit", "shot_estimator", "compute_minimum_eigenvalue"],
    "api/noisygrad.quantum.html": ['id="noisygrad.quantum.SPSA"', 'id="noisygrad.quantum.shot_estimator"'],
}
WIDTH, HEIGHT = 1400, 1600

pytestmark = pytest.mark.slow


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = f"no headless browser ({', '.join(BROWSERS)}): apt-get install chromium-headless-shell"
    if os.environ.get("NOISYGRAD_REQUIRE_BROWSER") == "1":  # set by .ci/run when .ci/docs-browser-setup succeeded
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("NOISYGRAD_DOCS_HTML")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").is_file(), f"NOISYGRAD_DOCS_HTML={given} holds no index.html: run make docs"
        return path
    _browser()  # no build without a browser to look at it
    out = tmp_path_factory.mktemp("html")
    env = {**os.environ, "NOISYGRAD_DOCS_EXECUTE": "(?!)", "OMP_NUM_THREADS": "1"}
    build = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(out)]
    done = subprocess.run(build, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the docs do not build:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out


def _run(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("page", list(PAGES))
def test_a_page_renders_in_a_browser_with_its_text(html: Path, page: str, tmp_path: Path) -> None:
    browser = _browser()
    url = (html / page).as_uri()
    dom = _run(browser, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in PAGES[page]:
        assert text in dom.stdout, f"{page}: the rendered page lacks {text!r}"
    assert not re.search(r"Traceback|Unexpected indentation|ERROR/\d", dom.stdout), f"{page}: an error is rendered"

    shot = tmp_path / (page.replace("/", "_").removesuffix(".html") + ".png")
    done = _run(browser, f"--screenshot={shot}", url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file(), f"{page}: no screenshot written"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{page}: the screenshot is not a PNG"
    pixels = image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    # not blank: a page of text has dark pixels (glyphs) on a light background, in more than a few rows
    dark = pixels.mean(axis=-1) < 0.5
    assert 0.005 < dark.mean() < 0.5, f"{page}: {dark.mean():.4f} of the pixels are dark: blank or unreadable"
    assert np.count_nonzero(dark.any(axis=1)) > HEIGHT // 10, f"{page}: text on too few rows"
    keep = os.environ.get("NOISYGRAD_DOCS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
