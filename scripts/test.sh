#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: set up, lint, type-check, test.
# Extra arguments go to pytest (e.g. ./scripts/test.sh -m "not slow" for a quicker local run).
# Python 3.10 (JetPack 6's) is supported too: ruff targets it (pyproject), mypy checks both 3.10 and 3.11, and
# where a python3.10 interpreter exists (on PATH or under pyenv) the fast tests also run on it in .venv310, with
# numpy 1.x and the last OpenCV built for it, as on a Jetson or a Raspberry Pi (STORE_AGENT_SKIP_PY310=1 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --dev
export STORE_AGENT_DATA="${STORE_AGENT_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy                          # python_version 3.10 (pyproject)
.venv/bin/mypy --python-version 3.11
.venv/bin/python -m pytest "$@"

py310=""
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python /usr/bin/python3.10 /usr/local/bin/python3.10; do
    # a pyenv shim on PATH may exist without a 3.10 behind it: ask the interpreter itself
    if [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
        py310=$candidate
    fi
done
if [ -n "$py310" ] && [ "${STORE_AGENT_SKIP_PY310:-0}" != 1 ]; then
    echo "Python 3.10 ($py310): the fast tests, with numpy<2 and opencv-python-headless<4.12"
    [ -x .venv310/bin/python ] || "$py310" -m venv .venv310
    .venv310/bin/python -m pip install -q --upgrade pip
    .venv310/bin/python -m pip install -q -e ".[dev]" "numpy>=1.26,<2" "opencv-python-headless>=4.9,<4.12"
    # OpenCV 4.11's FFmpeg falls back to TCP when `transport: udp` meets a TCP-only camera (5.0's refuses), so the
    # RTSP test's "udp is refused" step does not hold with the numpy-1 OpenCV of a Pi or Jetson.
    .venv310/bin/python -m pytest -m "not slow" tests/agent tests/drivers tests/trust tests/models tests/test_install.py \
        tests/test_doctor.py --deselect tests/drivers/test_rtsp.py::test_credentials_and_transport_reach_the_camera
else
    echo "no Python 3.10 interpreter here: its tests did not run (mypy and ruff checked 3.10 above)"
fi
