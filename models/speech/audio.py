"""Reading WAV files into 16 kHz mono int16, the one format the speech stack takes.

Other rates, sample widths and channel counts are converted (by the WAV
replay driver's reader); anything that is not PCM WAV is rejected with the
file name and what was found.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class AudioFormatError(ValueError):
    """The audio cannot be used; the message names the file and the problem."""


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    """The file as 16 kHz mono int16 (other rates, widths and channel counts are converted), or a clear error."""
    from drivers.audio.replay import read_wav as driver_read_wav

    if not path.is_file():
        raise AudioFormatError(f"{path}: no such file")
    try:
        return driver_read_wav(path, SAMPLE_RATE)
    except ValueError as exc:
        raise AudioFormatError(f"{path}: {exc}") from exc


def chunks(samples: npt.NDArray[np.int16], chunk_ms: int = 30) -> list[npt.NDArray[np.int16]]:
    """Split into microphone-sized blocks (20–30 ms), the last one possibly shorter."""
    n = SAMPLE_RATE * chunk_ms // 1000
    return [samples[i : i + n] for i in range(0, len(samples), n)]
