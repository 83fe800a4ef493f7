"""The product demo's ingredients: which models and media it needs, where it finds them, and the working folder.

The media cannot ship with the agent (over 1 MB, third-party licences), so it comes from the shared data folder
(``STORE_AGENT_DATA``, else ``../shared/data`` beside the checkout); the models from the demo's models folder
(``var/models``, where ``store-agent models fetch --dir var/models`` puts them) or ``STORE_AGENT_DATA/models``.
``prepare`` fills ``var/demo-mission/`` with ``config/demo-mission.yaml`` and a ``media/`` folder: links to the
shared files, and what is made from them (camera frames of a probe photo, audio with a pause before the
request, a product catalogue, the card script and registry). Everything used is listed in ``Mission.sources``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import wave
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "config" / "demo-mission.yaml"
DEFAULT_MODELS = REPO / "var" / "models"
WORK = REPO / "var" / "demo-mission"

MEMBER = "m-obama"
CARD_UID = "04A1B2C3D4E580"  # a 7-byte ISO 14443 UID
CARD_SECRET_ENV = "STORE_AGENT_DEMO_CARD_SECRET"
PRODUCT = "Arla-Ecological-Medium-Fat-Milk"
CATALOGUE_SIZE = 8
#: The models the mission's pipelines load (speech uses PocketSphinx's own model, inside its wheel).
MODELS = (
    "face_detection_yunet_2023mar_dynamic",
    "face_recognition_sface_2021dec_int8bq",
    "antispoof_minifasnet_v2",
    "antispoof_minifasnet_v1se",
    "yolox-nano",
    "movenet-lightning",
    "osnet-x0.25-msmt17",
    "efficientnet_lite0",
)
#: Shared media the mission reads, relative to the data folder.
MEDIA = {
    "enrol": "media/faces/enroll/obama",
    "probe": "media/faces/probe/obama_a.jpg",
    "lobby": "media/video/short_hamilton_clip.mp4",
    "street": "media/video/vtest_pets2009_480x360.avi",
    "catalog": "media/products/catalog",
    "shelf": "media/products/shelf",
    "speech": "media/speech/en/goforward.wav",
}


def data_dir() -> Path:
    return Path(os.environ.get("STORE_AGENT_DATA", REPO.parent / "shared" / "data")).resolve()


def missing_models(directory: Path) -> list[str]:
    from models.manifest import load_manifest

    manifest = load_manifest()
    return [name for name in MODELS if not (directory / manifest[name].file).is_file()]


def find_models(directory: Path | None = None) -> tuple[Path | None, list[str]]:
    """The first folder holding every model the mission needs (``directory`` only, when given), or None and what
    the first candidate lacks."""
    candidates = [directory] if directory is not None else [DEFAULT_MODELS, data_dir() / "models"]
    for candidate in candidates:
        if not missing_models(candidate):
            return candidate, []
    return None, missing_models(candidates[0])


def missing_media() -> list[str]:
    root = data_dir()
    return [str(root / rel) for rel in MEDIA.values() if not (root / rel).exists()]


def speech_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Mission:
    config: Path
    work: Path
    sources: list[str] = field(default_factory=list)
    enrol_photos: list[Path] = field(default_factory=list)


def _camera_frame(photo: Path) -> object:
    """A portrait photo as a 640x480 camera frame: the top 4:3 of it (where the head is), scaled.

    (Pasting a small photo on a plain canvas would make a picture-in-a-frame, which liveness rightly refuses.)
    """
    import cv2
    import numpy as np

    image = cv2.imread(str(photo))
    if image is None:
        raise OSError(f"{photo}: not a readable image")
    h, w = image.shape[:2]
    cw, ch = min(w, h * 4 // 3), min(h, w * 3 // 4)
    x = (w - cw) // 2
    return np.asarray(cv2.resize(image[0:ch, x : x + cw], (640, 480), interpolation=cv2.INTER_AREA), np.uint8)


def _speech_after(source: Path, target: Path, silence_s: float) -> None:
    """``source`` after ``silence_s`` of silence: the request comes while the member stands at the kiosk."""
    with wave.open(str(source), "rb") as wav:
        params, frames = wav.getparams(), wav.readframes(wav.getnframes())
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(b"\0" * int(silence_s * params.framerate) * params.sampwidth * params.nchannels + frames)


def prepare(models: Path, work: Path = WORK) -> Mission:
    """A fresh ``work`` folder with the mission config and its media (the previous run's state is removed)."""
    import cv2

    from agent.identity.cards import card_hash

    root = data_dir()
    media = {key: root / rel for key, rel in MEDIA.items()}
    if work.exists():
        shutil.rmtree(work)
    (work / "media").mkdir(parents=True)
    m = work / "media"
    os.symlink(REPO / "config" / "demo", work / "demo")
    os.symlink(media["lobby"], m / "lobby.mp4")
    os.symlink(media["street"], m / "street.avi")

    (m / "kiosk").mkdir()
    frame = _camera_frame(media["probe"])
    for i in range(25):  # 5 s at 5 fps: the member stands at the kiosk
        cv2.imwrite(str(m / "kiosk" / f"{i:03d}.jpg"), frame)  # type: ignore[call-overload]
    _speech_after(media["speech"], m / "kiosk-mic.wav", 2.0)

    skus = sorted(p.name for p in media["catalog"].iterdir() if p.is_dir())
    chosen = [PRODUCT, *[s for s in skus if s != PRODUCT][: CATALOGUE_SIZE - 1]]
    products = []
    for i, sku in enumerate(chosen):
        folder = m / "catalog" / sku
        folder.mkdir(parents=True)
        os.symlink(media["catalog"] / sku / "iconic.jpg", folder / "iconic.jpg")
        for photo in sorted((media["shelf"] / sku).glob("*.jpg"))[:5]:  # reference photos; 5..9 are shown
            os.symlink(photo, folder / photo.name)
        products.append({"sku": sku, "name": sku.replace("-", " "), "price": round(1.0 + i / 10, 2)})
    (m / "catalog" / "catalog.yaml").write_text(yaml.safe_dump({"currency": "EUR", "products": products}))
    (m / "counter").mkdir()
    shown = sorted((media["shelf"] / PRODUCT).glob("*.jpg"))[5:10]
    for i, photo in enumerate(shown * 2):  # held up at the till for 5 s at 2 fps
        os.symlink(photo, m / "counter" / f"{i:03d}.jpg")

    secret = os.environ.setdefault(CARD_SECRET_ENV, secrets.token_hex(32))
    (m / "cards.yaml").write_text(f"{card_hash(CARD_UID, secret.encode())}: {MEMBER}\n")
    (m / "desk-rfid.script").write_text(
        f'# the member taps their card at the desk reader (ASCII reader, CR LF)\nwait 4\ntext "{CARD_UID}\\r\\n"\n'
    )

    config = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    config["models"]["directory"] = str(models)
    path = work / "demo-mission.yaml"
    path.write_text(
        f"# Made by `store-agent demo` from config/demo-mission.yaml (models in {models}).\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
    sources = [
        f"member {MEMBER}: enrolled from {media['enrol']}/*.jpg, seen at the kiosk as frames of {media['probe']}",
        f"stranger in the lobby: {media['lobby']}",
        f"street (line, zones, queue): {media['street']}",
        f"product {PRODUCT} held at the till: {media['shelf'] / PRODUCT} (5 of its photos), "
        f"catalogue of {len(chosen)} SKUs from {media['catalog']}",
        f"spoken request: {media['speech']} after 2 s of silence",
        f"card {CARD_UID} of {MEMBER} (byte script), barcodes: config/demo/till-scanner.script",
        f"models: {models}",
    ]
    return Mission(path, work, sources, sorted(media["enrol"].glob("*.jpg")))
