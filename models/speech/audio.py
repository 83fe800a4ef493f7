"""Reading WAV files into 16 kHz mono int16, the one format the speech stack takes.

Other rates and stereo are converted (and logged); anything that is not
integer PCM is rejected with the file name and what was found.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class AudioFormatError(ValueError):
    """The audio cannot be used; the message names the file and the problem."""


def to_16k_mono(samples: npt.NDArray[np.int16], rate: int, channels: int, where: str) -> npt.NDArray[np.int16]:
    """Interleaved int16 at any rate and channel count → 16 kHz mono int16."""
    if channels < 1 or rate < 4000:
        raise AudioFormatError(f"{where}: unusable audio ({channels} channels at {rate} Hz)")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, SAMPLE_RATE)
        resampled = resample_poly(samples.astype(np.float32), SAMPLE_RATE // g, rate // g)
        samples = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    return samples


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    """The file as 16 kHz mono int16; converts rate and channels, rejects non-PCM16 with a clear error."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AudioFormatError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a PCM WAV file ({exc})") from exc
    if width != 2:
        raise AudioFormatError(f"{path}: {8 * width}-bit samples; the speech pipeline takes 16-bit PCM WAV")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.int16)
    if rate != SAMPLE_RATE or channels != 1:
        logger.info("%s: converting %d Hz, %d channel(s) to 16 kHz mono", path, rate, channels)
    return to_16k_mono(samples, rate, channels, str(path))


def chunks(samples: npt.NDArray[np.int16], chunk_ms: int = 30) -> list[npt.NDArray[np.int16]]:
    """Split into microphone-sized blocks (20–30 ms), the last one possibly shorter."""
    n = SAMPLE_RATE * chunk_ms // 1000
    return [samples[i : i + n] for i in range(0, len(samples), n)]
