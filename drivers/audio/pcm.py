"""PCM conversions shared by the microphone drivers: channel mixing, int16 scaling, block-wise resampling."""

from __future__ import annotations

import math
from math import gcd

import numpy as np
import numpy.typing as npt


class StreamResampler:
    """Polyphase rate conversion of a stream in blocks, equal to converting it whole (after a short delay).

    Each block is converted together with ``pad`` input samples of context on
    both sides; only the middle is emitted, so block edges leave no clicks.
    The output lags the input by ``pad`` samples (about 1 ms).
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        g = gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g
        half_taps = (
            10 * max(self.up, self.down) / self.up
        )  # resample_poly's default filter half-length, in input samples
        self.pad = math.ceil((half_taps + 2) / self.down) * self.down
        self._buf: npt.NDArray[np.float32] = np.zeros(self.pad, np.float32)

    def feed(self, block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        from scipy.signal import resample_poly

        self._buf = np.concatenate([self._buf, block.astype(np.float32)])
        p = self.pad
        m = ((len(self._buf) - 2 * p) // self.down) * self.down
        if m <= 0:
            return np.zeros(0, np.float32)
        y = resample_poly(self._buf[: 2 * p + m], self.up, self.down)
        start = p * self.up // self.down
        out = np.asarray(y[start : start + m * self.up // self.down], np.float32)
        self._buf = self._buf[m:]
        return out


def to_mono_float(block: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """Average the channels of an int16 (frames × channels) block into float32 in [-1, 1)."""
    data = block.astype(np.float32) / 32768.0
    return data.mean(axis=1) if data.ndim == 2 else data


def to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    out: npt.NDArray[np.int16] = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    return out
