"""Person models: YOLOX-nano detection (whole frame or tiled), MoveNet keypoints, OSNet appearance embedding.

Each wrapper is pure apart from its onnxruntime session: pre-processing,
``session.run`` and post-processing into a small domain type, so the maths can
be tested on small arrays.
"""

from models.people.appearance import AppearanceEmbedder, osnet_input
from models.people.detector import PersonDetection, PersonDetector, decode_yolox, letterbox, nms
from models.people.pose import KEYPOINT_NAMES, Keypoints, PoseEstimator, square_crop
from models.people.tiling import TiledPersonDetector, TileSettings, tile_windows

__all__ = [
    "KEYPOINT_NAMES",
    "AppearanceEmbedder",
    "Keypoints",
    "PersonDetection",
    "PersonDetector",
    "PoseEstimator",
    "TileSettings",
    "TiledPersonDetector",
    "decode_yolox",
    "letterbox",
    "nms",
    "osnet_input",
    "square_crop",
    "tile_windows",
]
