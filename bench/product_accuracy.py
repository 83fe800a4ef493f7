"""Product recognition accuracy on a session split: catalogue and tuning photos from one part, figures from another.

Run: STORE_AGENT_DATA=../shared/data GROCERY_STORE_DATASET=/path/to/GroceryStoreDataset/dataset \\
     OMP_NUM_THREADS=1 python bench/product_accuracy.py [--configs default|all]

Session split (needs the full GroceryStoreDataset, MIT, github.com/marcusklasson/GroceryStoreDataset: its
train, val and test photos were shot on separate store visits; the shared data holds half of its test split):

- catalogue: each SKU's studio photo plus the first 5 (by file name) of its train-split photos;
- tuning part: the other train-split photos and the val split (shot a year later); every setting and
  threshold in docs/product.md was chosen on this part only;
- reporting part: the whole test split (781 photos), also shown for its half in the shared data (399).

Without the dataset only the within-session protocol runs (shared data only: studio + first 5 shelf photos
per SKU as catalogue, the other 244 shelf photos of the same visits as queries), which flatters every variant.

Unknown products: the SKUs are cut into 6 folds (every 6th SKU); for each fold the catalogue is rebuilt
without it (whitening refitted) and its photos are the unknowns. "unknown acc" is the share of their photos
that pass the thresholds; "known acc / prec" are the share of catalogued products' photos accepted and how
many of those were the right SKU. Thresholds are the pipeline defaults, then the best on the tuning part
(most correct acceptances with unknown acceptance <= 5 % and precision >= 0.95), applied unchanged to the
reporting part. Per-frame figures: the pipeline votes over several frames on top of this.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.catalog import SearchResult, index_from_copies, read_image
from agent.config.pipelines import ProductPipeline
from models.product import ProductEmbedder
from models.product.embedder import Views

F = npt.NDArray[np.float32]
SHELF_REFS = 5
FOLDS = 6
MAX_UNKNOWN, MIN_PRECISION = 0.05, 0.95
#: Further unknown-acceptance budgets for which the tuned thresholds are also shown (``--tradeoff``).
TRADEOFF = (0.10, 0.20)
GRID = {
    "min_score": [0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95],
    "min_margin": [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2],
    "min_cosine": [0.3, 0.4, 0.5, 0.6, 0.7],
}
Photos = list[tuple[Path, str]]


@dataclass(frozen=True)
class Split:
    name: str
    refs: Photos
    parts: dict[str, Photos]  # name -> query photos; with several, the first is the tuning part


@dataclass(frozen=True)
class Config:
    name: str
    input_size: int = 384
    centre_crop: float = 0.7
    views: Views = "single"
    augment: bool = True


CONFIGS = [
    Config("before: 224, whole image, references as shot", 224, 1.0, augment=False),
    Config("default: 384, centre 0.7, 16 copies per reference"),
    Config("384, whole image, 16 copies", 384, 1.0),
    Config("384, centre 0.7, references as shot", augment=False),
    Config("224, centre 0.7, 16 copies", 224),
    Config("320, centre 0.7, 16 copies", 320),
    Config("384, multi view (6 crops), 16 copies", views="multi"),
]


def session_split(dataset: Path, catalog: Path) -> Split:
    skus = sorted(p.name for p in catalog.iterdir() if p.is_dir())
    refs: Photos = []
    tune: Photos = []
    report: Photos = []
    shared: Photos = []
    for sku in skus:
        train = sorted(dataset.glob(f"train/Packages/*/{sku}/*.jpg"))
        if not train:
            raise SystemExit(
                f"{dataset}: no train/Packages/*/{sku}/ photos: not the GroceryStoreDataset 'dataset' folder"
            )
        refs += [(catalog / sku / "iconic.jpg", sku)] + [(p, sku) for p in train[:SHELF_REFS]]
        tune += [(p, sku) for p in train[SHELF_REFS:] + sorted(dataset.glob(f"val/Packages/*/{sku}/*.jpg"))]
        test = sorted(dataset.glob(f"test/Packages/*/{sku}/*.jpg"))
        report += [(p, sku) for p in test]
        shared += [(p, sku) for p in test if int(p.stem.rsplit("_", 1)[1]) % 2 == 1]
    return Split(
        "session split (catalogue + tuning: train/val visits; reporting: test visits)",
        refs,
        {"tuning (train rest + val)": tune, "reporting (test split)": report, "reporting, shared-data half": shared},
    )


def within_session_split(products: Path) -> Split:
    skus = sorted(p.name for p in (products / "catalog").iterdir() if p.is_dir())
    refs: Photos = []
    queries: Photos = []
    for sku in skus:
        shelf = sorted((products / "shelf" / sku).glob("*.jpg"))
        n = min(SHELF_REFS, len(shelf) - 1)
        refs += [(products / "catalog" / sku / "iconic.jpg", sku)] + [(p, sku) for p in shelf[:n]]
        queries += [(p, sku) for p in shelf[n:]]
    return Split("within-session (shared data only; same visits as the catalogue)", refs, {"queries": queries})


class Embeddings:
    """Embeds each photo once per (input size, crop, views) or (input size, augmentation)."""

    def __init__(self, models: Path) -> None:
        self.models = models
        self.images: dict[Path, npt.NDArray[np.uint8]] = {}
        self.cache: dict[tuple[object, ...], F] = {}

    def embedder(self, config: Config) -> ProductEmbedder:
        return ProductEmbedder.load(
            self.models, threads=1, views=config.views, centre_crop=config.centre_crop, input_size=config.input_size
        )

    def image(self, path: Path) -> npt.NDArray[np.uint8]:
        if path not in self.images:
            self.images[path] = read_image(path)
        return self.images[path]

    def queries(self, config: Config, photos: Photos) -> F:
        """One vector per photo; a photo already embedded with this config (another part) is not embedded again."""
        key = ("q", config.input_size, config.centre_crop, config.views)
        missing = [p for p, _ in photos if (*key, p) not in self.cache]
        if missing:
            vectors = self.embedder(config).embed([self.image(p) for p in missing])
            self.cache.update({(*key, p): v for p, v in zip(missing, vectors, strict=True)})
        return np.stack([self.cache[(*key, p)] for p, _ in photos])

    def references(self, config: Config, photos: Photos) -> F:
        """photos x copies x dim; without augmentation one copy: the whole photo, as the catalogue used to."""
        key = ("r", config.input_size, config.augment, tuple(p for p, _ in photos))
        if key not in self.cache:
            images = [self.image(p) for p, _ in photos]
            if config.augment:
                self.cache[key] = self.embedder(config).embed_references(images)
            else:
                whole = Config("whole", config.input_size, 1.0, augment=False)
                self.cache[key] = self.embedder(whole).embed(images)[:, None, :]
        return self.cache[key]


def rates(results: list[SearchResult], truth: list[str]) -> tuple[float, float]:
    top1 = float(np.mean([r.top[0].sku == t for r, t in zip(results, truth, strict=True)]))
    top5 = float(np.mean([t in {m.sku for m in r.top} for r, t in zip(results, truth, strict=True)]))
    return top1, top5


def open_set(
    known: list[tuple[SearchResult, str]], unknown: list[SearchResult], thresholds: tuple[float, float, float]
) -> tuple[float, float, float, float]:
    """(known accepted, precision, unknown accepted, known right) at (min_score, min_margin, min_cosine)."""
    score, margin, cosine = thresholds
    accepted = [(r.accepted(score, margin, cosine), t) for r, t in known]
    n = sum(a is not None for a, _ in accepted)
    right = sum(a is not None and a.sku == t for a, t in accepted)
    unknown_rate = float(np.mean([r.accepted(score, margin, cosine) is not None for r in unknown]))
    return n / len(known), right / max(1, n), unknown_rate, right / len(known)


def tuned(
    known: list[tuple[SearchResult, str]], unknown: list[SearchResult], max_unknown: float = MAX_UNKNOWN
) -> tuple[float, float, float] | None:
    best: tuple[float, tuple[float, float, float]] | None = None
    for t in itertools.product(GRID["min_score"], GRID["min_margin"], GRID["min_cosine"]):
        _, precision, unknown_rate, right = open_set(known, unknown, t)
        if unknown_rate <= max_unknown and precision >= MIN_PRECISION and (best is None or right > best[0]):
            best = (right, t)
    return best[1] if best else None


def evaluate(config: Config, split: Split, emb: Embeddings, whiten: bool, tradeoff: bool = False) -> None:
    refs = emb.references(config, split.refs)
    ref_skus = [s for _, s in split.refs]
    skus = sorted(set(ref_skus))
    index = index_from_copies(refs, ref_skus, whiten)
    folds = []
    for f in range(FOLDS):
        out = set(skus[f::FOLDS])
        keep = [i for i, s in enumerate(ref_skus) if s not in out]
        folds.append((out, index_from_copies(refs[keep], [ref_skus[i] for i in keep], whiten)))
    defaults = ProductPipeline()
    default_t = (defaults.min_score, defaults.min_margin, defaults.min_cosine)
    chosen: tuple[float, float, float] | None = None
    looser: list[tuple[float, tuple[float, float, float] | None]] = []
    print(f"\n{config.name}")
    for i, (part, photos) in enumerate(split.parts.items()):
        q = emb.queries(config, photos)
        truth = [s for _, s in photos]
        results = index.search(q, top=5)
        top1, top5 = rates(results, truth)
        known = list(zip(results, truth, strict=True))
        unknown: list[SearchResult] = []
        for out, partial in folds:
            rows = [j for j, s in enumerate(truth) if s in out]
            unknown += partial.search(q[rows], top=5)
        if i == 0 and len(split.parts) > 1:  # thresholds are tuned only where a separate part reports them
            chosen = tuned(known, unknown)
            looser = [(budget, tuned(known, unknown, budget)) for budget in TRADEOFF] if tradeoff else []
        line = f"  {part:30s} n={len(photos):4d} top-1 {top1:.3f} top-5 {top5:.3f}"
        for label, t in (("defaults", default_t), ("tuned", chosen)):
            if t is not None:
                acc, prec, unk, _ = open_set(known, unknown, t)
                line += (
                    f" | {label} {t[0]:g}/{t[1]:g}/{t[2]:g}: known acc {acc:.2f} prec {prec:.2f} unknown acc {unk:.2f}"
                )
        print(line, flush=True)
        for budget, t in looser:
            if t is not None:
                acc, prec, unk, _ = open_set(known, unknown, t)
                print(
                    f"    tuned for unknown <= {budget:.2f}: {t[0]:g}/{t[1]:g}/{t[2]:g}: "
                    f"known acc {acc:.2f} prec {prec:.2f} unknown acc {unk:.2f}"
                )


def crop_cost(emb: Embeddings, photo: Path) -> None:
    """Median milliseconds to embed one query crop, one thread, per input size."""
    image = emb.image(photo)
    print("\ncost per crop (1 thread, batch 1, median of 20):", end="")
    for size in (224, 320, 384):
        embedder = emb.embedder(Config("t", size))
        embedder.embed([image])
        times = []
        for _ in range(20):
            start = time.perf_counter()
            embedder.embed([image])
            times.append(time.perf_counter() - start)
        print(f"  {size}: {statistics.median(times) * 1000:.1f} ms", end="")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", choices=["default", "all"], default="all")
    parser.add_argument("--dataset", type=Path, default=os.environ.get("GROCERY_STORE_DATASET"))
    parser.add_argument("--tradeoff", action="store_true", help="also tune for 10 % and 20 % unknown acceptance")
    args = parser.parse_args()
    data = Path(os.environ.get("STORE_AGENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    products = data / "media" / "products"
    emb = Embeddings(data / "models")
    print(f"# {platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    splits = [within_session_split(products)]
    if args.dataset:
        splits.insert(0, session_split(Path(args.dataset), products / "catalog"))
    else:
        print("GROCERY_STORE_DATASET not set: the session split is skipped (within-session figures only)")
    configs = CONFIGS[:2] if args.configs == "default" else CONFIGS
    for split in splits:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in split.parts.items())
        print(f"\n## {split.name}: catalogue {len(split.refs)} photos; {sizes}")
        for config in configs:
            evaluate(config, split, emb, whiten=True, tradeoff=args.tradeoff)
    crop_cost(emb, splits[0].refs[1][0])


if __name__ == "__main__":
    main()
