"""``store-agent zones --config C --camera NAME --snapshot out.png``: draw a camera's zones and lines on a frame.

Installers draw zones by editing coordinates; this shows them on what the
camera actually sees (one frame read through the camera's own driver), with
each line's 'in' direction, so a mistake is visible before counting starts.

Exit codes: 0 written; 1 the PNG cannot be written; 2 a --camera the config does not have, or a --frame past
the end of a replayed clip; 69 the camera gives no frame; 78 the config is invalid or a zone does not fit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_UNAVAILABLE, EXIT_USAGE, add_config_option
from agent.config.loader import load_config
from agent.pipelines.people.geometry import signed_distance
from agent.pipelines.people.settings import PeopleScene, PeopleSettings
from agent.pipelines.people.stage import build_scene
from drivers.base import EndOfStream, Frame
from drivers.registry import create_driver

logger = logging.getLogger(__name__)

ZONE_COLOUR = (0, 200, 255)
QUEUE_COLOUR = (255, 160, 0)
LINE_COLOUR = (0, 0, 255)


def register(sub: Any) -> None:
    parser = sub.add_parser("zones", help="render a camera's configured zones and lines on a frame (PNG)")
    add_config_option(parser)
    parser.add_argument("--camera", required=True, help="camera name from the config")
    parser.add_argument("--snapshot", type=Path, required=True, help="where to write the PNG")
    parser.add_argument(
        "--frame", type=_frame_index, default=0, help="frame index to draw on (replay sources; default 0)"
    )
    parser.set_defaults(func=zones)


class ZonesError(Exception):
    """What the operator asked cannot be drawn; ``code`` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _frame_index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame index (0, 1, 2, ...)")
    return value


def render(image: np.ndarray, camera: str, scene: PeopleScene) -> np.ndarray:
    """A copy of ``image`` with zones (filled, outlined, named) and directed lines (arrow towards 'in')."""
    h, w = image.shape[:2]
    zones, lines = build_scene(camera, scene, w, h)
    out = image.copy()
    overlay = image.copy()
    for z in zones:
        pts = np.round(np.array(z.polygon)).astype(np.int32)
        colour = QUEUE_COLOUR if z.queue else ZONE_COLOUR
        cv2.fillPoly(overlay, [pts], colour)
        cv2.polylines(out, [pts], True, colour, 2)
    out = np.asarray(cv2.addWeighted(overlay, 0.25, out, 0.75, 0))
    for z in zones:
        x, y = np.array(z.polygon).mean(axis=0)
        text = f"{z.name}{' (queue)' if z.queue else ''}"
        _label(out, text, int(x) - _text_width(text) // 2, int(y))
    for ln in lines:
        a = (round(ln.a[0]), round(ln.a[1]))
        b = (round(ln.b[0]), round(ln.b[1]))
        cv2.line(out, a, b, LINE_COLOUR, 2)
        mx, my = (ln.a[0] + ln.b[0]) / 2, (ln.a[1] + ln.b[1]) / 2
        dx, dy = ln.b[0] - ln.a[0], ln.b[1] - ln.a[1]
        length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
        # 'in' goes from the left of A->B to its right (positive signed distance side).
        nx, ny = -dy / length, dx / length
        if signed_distance((mx + nx, my + ny), ln.a, ln.b) < 0:
            nx, ny = -nx, -ny
        if ln.invert:
            nx, ny = -nx, -ny
        arrow = 0.08 * min(w, h)
        start = (round(mx - nx * arrow), round(my - ny * arrow))
        end = (round(mx + nx * arrow), round(my + ny * arrow))
        cv2.arrowedLine(out, start, end, LINE_COLOUR, 2, tipLength=0.3)
        text = f"{ln.name}: in"
        _label(out, text, end[0] + 4 if nx >= 0 else end[0] - _text_width(text) - 4, end[1] - 8)
        _label(out, "A", a[0] + 4, a[1] + 4)
        _label(out, "B", b[0] + 4, b[1] + 4)
    return out


def _text_width(text: str) -> int:
    return int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0])


def _label(image: np.ndarray, text: str, x: int, y: int) -> None:
    """White text with a dark outline, its baseline at (x, y), moved inside the frame where it would spill out."""
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x = max(2, min(x, image.shape[1] - width - 2))
    y = max(height + 2, min(y, image.shape[0] - 4))
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def grab_frame(config_path: Path, camera: str, index: int) -> tuple[np.ndarray, PeopleScene]:
    """One frame from the named camera through its configured driver, and that camera's scene.

    Raises ``ZonesError`` for what the operator can fix; a camera that fails to open raises ``DeviceError``
    (exit 69 through the CLI)."""
    config = load_config(config_path).config
    options = next((o for k, o in config.devices() if k == "camera" and o.name == camera), None)
    if options is None:
        known = ", ".join(sorted(config.device_names("camera"))) or "none"
        raise ZonesError(f"{config_path}: no enabled camera named {camera!r} (configured: {known})", EXIT_USAGE)
    scene = config.pipelines.settings(PeopleSettings).scenes.get(camera)
    if scene is None:
        raise ZonesError(f"{config_path}: pipelines.people.scenes has no entry for camera {camera!r}", EXIT_USAGE)
    with create_driver("camera", options) as driver:
        item: Frame | None = None
        for read in range(index + 1):
            item = None
            try:
                for _attempt in range(50):
                    item = driver.read(0.2)
                    if item is not None:
                        break
            except EndOfStream:
                raise ZonesError(
                    f"--frame {index}: camera {camera} ends after {read} frame(s) (frames count from 0)", EXIT_USAGE
                ) from None
            if item is None:
                raise ZonesError(f"camera {camera}: no frame within 10 s", EXIT_UNAVAILABLE)
    assert item is not None
    return np.asarray(item.image), scene


def zones(args: argparse.Namespace) -> int:
    try:
        image, scene = grab_frame(args.config, args.camera, args.frame)
        try:
            drawn = render(image, args.camera, scene)
        except ValueError as exc:
            raise ZonesError(f"{args.config}: {exc}", EXIT_CONFIG) from None
        try:
            written = cv2.imwrite(str(args.snapshot), drawn)
        except cv2.error:
            written = False
        if not written:
            raise ZonesError(
                f"cannot write {args.snapshot} (is the folder there and the suffix .png or .jpg?)", EXIT_FAILURE
            )
    except ZonesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(
        f"{args.snapshot}: {image.shape[1]}x{image.shape[0]} frame of {args.camera} with "
        f"{len(scene.zones)} zone(s) and {len(scene.lines)} line(s)"
    )
    return 0
