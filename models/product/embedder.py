"""EfficientNet-Lite0 as a product-image embedder: BGR crops in, L2-normalised 1280-d vectors out.

Recognition is nearest-neighbour search over these vectors (the catalogue
changes weekly; no classifier is retrained). The model's ``embedding`` output
is the global-average-pooled feature map after ReLU; the ImageNet ``logits``
output is not used.

Defaults, chosen on the tuning part of a session split of the
GroceryStoreDataset (references and tuning photos from its train split,
figures reported on its separately shot test split; docs/product.md):

- ``input_size`` 384 instead of the 224 the network was trained at: a held
  product then covers more of the network's receptive fields (the shipped
  export is made size-free in memory, models/product/free_size.py);
- ``centre_crop`` 0.7: a query photo or zone crop is mostly shelf around the
  product, and the shelf (other products) misleads the search;
- reference photos are embedded as 16 augmented copies
  (models/product/augment.py, :meth:`ProductEmbedder.embed_references`) from
  which the catalogue whitening learns the nuisance directions.

``views="multi"`` averages six views of each query image (whole, mirrored,
centre 80 % and centre 60 %, each also mirrored), at six times the cost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import numpy.typing as npt

from models.product.augment import AUGMENT_VERSION, N_REFERENCE_VIEWS, reference_views
from models.product.free_size import SIZE_MULTIPLE, free_input_size
from models.vectors import l2_normalise

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

MODEL_NAME = "efficientnet_lite0"
#: Side of the square the network sees; a multiple of 32 (the export was trained at 224).
INPUT_SIZE = 384
EMBEDDING_DIM = 1280
#: Changes whenever pre-processing changes, so cached catalogue embeddings are recomputed.
PREPROCESS_VERSION = 1
CENTRE_CROP = 0.7

Views = Literal["single", "multi"]
ImageBGR = npt.NDArray[np.uint8]
Vectors = npt.NDArray[np.float32]


def preprocess(image: ImageBGR, size: int = INPUT_SIZE) -> npt.NDArray[np.float32]:
    """One BGR uint8 image (any size) -> 3 x size x size float32, RGB, (x - 127) / 128."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 HxWx3 image, got dtype {image.dtype} shape {image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"image too small to embed: {image.shape[1]}x{image.shape[0]}")
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32)
    out: npt.NDArray[np.float32] = ((rgb - 127.0) / 128.0).transpose(2, 0, 1)
    return out


def views_of(image: ImageBGR, views: Views, centre_crop: float = 1.0) -> list[ImageBGR]:
    """The crops that are embedded and averaged for one image."""
    h, w = image.shape[:2]
    if views == "single":
        if centre_crop >= 1.0:
            return [image]
        ch, cw = max(8, round(h * centre_crop)), max(8, round(w * centre_crop))
        y, x = (h - ch) // 2, (w - cw) // 2
        return [image[y : y + ch, x : x + cw]]
    out = [image, image[:, ::-1]]
    for fraction in (0.8, 0.6):
        side = max(8, int(min(h, w) * fraction))
        y, x = (h - side) // 2, (w - side) // 2
        crop = image[y : y + side, x : x + side]
        out += [crop, crop[:, ::-1]]
    return out


class ProductEmbedder:
    """Wraps one onnxruntime session of EfficientNet-Lite0 (shared, created by ``models.runtime``).

    ``input_size`` must match a model that declares a fixed input side; with
    a size-free model (what :meth:`load` creates) any multiple of 32 works.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        views: Views = "single",
        batch: int = 8,
        centre_crop: float = CENTRE_CROP,
        input_size: int = INPUT_SIZE,
    ) -> None:
        names = [o.name for o in session.get_outputs()]
        if "embedding" not in names:
            raise ValueError(f"model has no 'embedding' output (outputs: {names}); not the EfficientNet-Lite0 export")
        shape = next(o.shape for o in session.get_outputs() if o.name == "embedding")
        if shape[-1] != EMBEDDING_DIM:
            raise ValueError(f"model 'embedding' output is {shape}, expected N x {EMBEDDING_DIM}")
        declared = session.get_inputs()[0].shape[2:]
        if all(isinstance(d, int) for d in declared) and list(declared) != [input_size, input_size]:
            raise ValueError(f"model takes {declared[0]}x{declared[1]} inputs, not input_size {input_size}")
        if input_size % SIZE_MULTIPLE:
            raise ValueError(f"input_size must be a multiple of {SIZE_MULTIPLE}, got {input_size}")
        self.input_size = input_size
        self.session = session
        self.input_name = session.get_inputs()[0].name
        if not 0.3 <= centre_crop <= 1.0:
            raise ValueError(f"centre_crop must be between 0.3 and 1.0, got {centre_crop}")
        self.views: Views = views
        self.batch = batch
        self.centre_crop = centre_crop

    @classmethod
    def load(
        cls,
        models_dir: object,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 1,
        views: Views = "single",
        centre_crop: float = CENTRE_CROP,
        input_size: int = INPUT_SIZE,
    ) -> ProductEmbedder:
        from pathlib import Path

        from models.runtime import session_for

        prepare = free_input_size if input_size != 224 else None
        session = session_for(MODEL_NAME, Path(str(models_dir)), providers, threads, prepare=prepare)
        return cls(session, views=views, centre_crop=centre_crop, input_size=input_size)

    @property
    def version(self) -> str:
        """Identifies what produced a vector; cached vectors with another version are stale."""
        crop = f"/c{self.centre_crop:g}" if self.views == "single" and self.centre_crop < 1.0 else ""
        size = f"/s{self.input_size}" if self.input_size != 224 else ""
        return f"{MODEL_NAME}/p{PREPROCESS_VERSION}{size}/{self.views}{crop}"

    @property
    def reference_version(self) -> str:
        """Identifies what produced reference rows (:meth:`embed_references`); a change re-embeds the catalogue."""
        size = f"/s{self.input_size}" if self.input_size != 224 else ""
        return f"{MODEL_NAME}/p{PREPROCESS_VERSION}{size}/refs-a{AUGMENT_VERSION}x{N_REFERENCE_VIEWS}"

    def _run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = self.session.run(["embedding"], {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def _embed_views(self, per_image: list[list[ImageBGR]]) -> Vectors:
        """Unit-length embeddings of every view, N x views x 1280 (every image has the same number of views)."""
        flat = [preprocess(v, self.input_size) for views in per_image for v in views]
        raw = np.concatenate(
            [self._run(np.stack(flat[i : i + self.batch])) for i in range(0, len(flat), self.batch)], axis=0
        )
        return l2_normalise(raw).reshape(len(per_image), len(per_image[0]), EMBEDDING_DIM)

    def embed(self, images: Sequence[ImageBGR]) -> Vectors:
        """N BGR query images -> N x 1280 float32, each row of unit length."""
        if not images:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        unit = self._embed_views([views_of(img, self.views, self.centre_crop) for img in images])
        return l2_normalise(unit.sum(axis=1))

    def embed_references(self, images: Sequence[ImageBGR]) -> Vectors:
        """N catalogue photos -> N x 16 x 1280: unit-length embeddings of each photo's augmented copies.

        The catalogue searches each photo's mean row and fits its whitening on
        all the copies (agent/catalog/build.py).
        """
        if not images:
            return np.zeros((0, N_REFERENCE_VIEWS, EMBEDDING_DIM), np.float32)
        return self._embed_views([reference_views(img) for img in images])
