"""picamera2 broken by numpy 2 (Raspberry Pi OS: apt's picamera2 and simplejpeg are built for numpy 1.x) is a clear
DeviceError that says what to pin, not a traceback on every retry.

The failure is the real one: simplejpeg 1.7.2 from PyPI is a Cython extension built against numpy 1.x, exactly like
Debian's python3-simplejpeg that picamera2 imports; under numpy 2 its import raises "numpy.dtype size changed".
picamera2 itself cannot be installed off a Pi, so a package named picamera2 that does what picamera2 does first
(import simplejpeg for its JPEG encoder) stands in front of it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.base import DeviceError
from drivers.camera.picamera2 import Picamera2Camera, Picamera2Options
from tests.prereq import require


@pytest.fixture
def numpy1_picamera2(tmp_path: Path) -> Iterator[Path]:
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip(f"numpy {np.__version__}: the numpy-1 build of simplejpeg loads fine, nothing to provoke")
    site = tmp_path / "site"
    got = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--only-binary=:all:", "--target", str(site),
         "simplejpeg==1.7.2"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if got.returncode != 0:
        require("the package index", f"simplejpeg 1.7.2 (for numpy 1.x) could not be installed: {got.stderr[-300:]}")
    (site / "picamera2").mkdir()
    (site / "picamera2" / "__init__.py").write_text("import simplejpeg  # picamera2's JPEG encoder does this first\n")
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.split(".")[0] in ("picamera2", "simplejpeg")]:
            del sys.modules[name]


def test_numpy_abi_mismatch_is_a_device_error_naming_the_pins(numpy1_picamera2: Path) -> None:
    with pytest.raises(ValueError, match="dtype size changed"):
        import simplejpeg  # noqa: F401  # the real failure, before the driver sees it
    camera = Picamera2Camera(Picamera2Options(name="shelf", type="picamera2"))
    for _ in range(2):  # every retry fails the same way, as one line
        with pytest.raises(DeviceError) as caught:
            camera.acquire()
        message = str(caught.value)
        assert f"picamera2 cannot load with numpy {np.__version__}" in message
        assert "numpy.dtype size changed" in message
        assert "pip install 'numpy<2' 'opencv-python-headless<4.12'" in message and "\n" not in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
