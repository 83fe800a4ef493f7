"""Opens the sounddevice microphone driver with each JSON option set given and prints what it delivered.

Run by tests/drivers/test_live_devices.py in a subprocess whose ``HOME`` holds an ``.asoundrc`` (PortAudio
reads the ALSA configuration once, when sounddevice is imported):

    python -m tests.drivers.mic_probe '[{"name": "mic", "type": "sounddevice", ...}, ...]' CHUNKS

One JSON line per option set: what the driver delivered, or the DeviceError it raised.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from drivers.audio.sounddevice_mic import SoundDeviceMicrophone, SoundDeviceOptions
from drivers.base import DeviceError


def probe(options: SoundDeviceOptions, wanted: int) -> dict[str, Any]:
    mic = SoundDeviceMicrophone(options)
    try:
        mic.open()
        latency = float(mic._stream.latency)
        ring_blocks = mic._ring.maxsize
        chunks = []
        while len(chunks) < wanted:
            chunk = mic.read(2.0)
            if chunk is None:
                break
            chunks.append(chunk)
    except DeviceError as exc:
        return {"error": str(exc)}
    finally:
        mic.close()
    audio = np.concatenate([c.samples for c in chunks]).astype(np.float64)
    rate = chunks[0].sample_rate
    return {
        "device": mic.device_label,
        "chunks": len(chunks),
        "sizes": sorted({len(c.samples) for c in chunks}),
        "rates": sorted({c.sample_rate for c in chunks}),
        "peak_hz": round(float(np.argmax(np.abs(np.fft.rfft(audio))) * rate / len(audio)), 1),
        "latency_s": latency,
        "ring_s": ring_blocks * options.chunk_ms / 1000,
    }


def main() -> None:
    wanted = int(sys.argv[2])
    for options in json.loads(sys.argv[1]):
        print(json.dumps(probe(SoundDeviceOptions.model_validate(options), wanted)), flush=True)


if __name__ == "__main__":
    main()
