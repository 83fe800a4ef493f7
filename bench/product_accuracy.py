"""Which embedding and search variants help product recognition: the table in docs/product.md.

Run: STORE_AGENT_DATA=../shared/data OPENBLAS_NUM_THREADS=1 python bench/product_accuracy.py
(about 3 minutes on 2 cores: 430 photos embedded three times). Protocol of
tests/product/test_accuracy.py: references are each SKU's studio photo plus its
first 5 shelf photos (fewer where it has few), queries the remaining 244 shelf
photos; top-1 / top-5 over distinct SKUs, exact search. Feature-map variants
need the ``onnx`` package: the last feature map and two earlier block outputs
are added as graph outputs in memory (the shipped model file is not changed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.catalog import CatalogIndex, read_image
from models.product.embedder import preprocess

F = npt.NDArray[np.float32]
SHELF_REFS = 5
EXTRA = {"head": "/Clip_1_output_0", "block14": "/_blocks.14/Add_output_0", "block10": "/_blocks.10/Add_output_0"}


def l2(x: F) -> F:
    out: F = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return out


def session(model: Path) -> object:
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(model))
    for name in EXTRA.values():
        graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])


def pooled(sess: object, images: list[npt.NDArray[np.uint8]]) -> dict[str, F]:
    """Pooled variants of the feature maps for each image."""
    out: dict[str, list[F]] = {}
    for i in range(0, len(images), 16):
        batch = np.stack([preprocess(np.ascontiguousarray(im)) for im in images[i : i + 16]])
        maps = dict(zip(EXTRA, sess.run(list(EXTRA.values()), {"input": batch}), strict=True))  # type: ignore[attr-defined]
        head = maps["head"]
        feats = {
            "gap": head.mean(axis=(2, 3)),
            "max": head.max(axis=(2, 3)),
            "block14": maps["block14"].mean(axis=(2, 3)),
            "block10": maps["block10"].mean(axis=(2, 3)),
        }
        for p in (2, 3, 4):
            feats[f"gem{p}"] = (np.maximum(head, 1e-6) ** p).mean(axis=(2, 3)) ** (1 / p)
        for k, v in feats.items():
            out.setdefault(k, []).append(v.astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    data = Path(os.environ.get("STORE_AGENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    root = data / "media" / "products"
    skus = sorted(p.name for p in (root / "catalog").iterdir() if p.is_dir())
    refs: list[tuple[Path, str]] = []
    queries: list[tuple[Path, str]] = []
    for sku in skus:
        shelf = sorted((root / "shelf" / sku).glob("*.jpg"))
        n = min(SHELF_REFS, len(shelf) - 1)
        refs += [(root / "catalog" / sku / "iconic.jpg", sku)] + [(p, sku) for p in shelf[:n]]
        queries += [(p, sku) for p in shelf[n:]]
    images = [read_image(p) for p, _ in refs + queries]
    n_ref = len(refs)
    ref_skus = [s for _, s in refs]
    truth = np.array([skus.index(s) for _, s in queries])
    ref_ids = np.array([skus.index(s) for s in ref_skus])
    sess = session(data / "models" / "efficientnet_lite0.onnx")

    def centre(im: npt.NDArray[np.uint8], f: float) -> npt.NDArray[np.uint8]:
        h, w = im.shape[:2]
        ch, cw = round(h * f), round(w * f)
        return im[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]

    full = pooled(sess, images)
    flip = pooled(sess, [im[:, ::-1] for im in images])
    c80 = pooled(sess, [centre(im, 0.8) for im in images])
    print(f"{n_ref} reference photos, {len(queries)} queries, {len(skus)} SKUs")

    def rates(per_sku: F) -> tuple[float, float]:
        order = np.argsort(-per_sku, axis=1)
        return float((order[:, 0] == truth).mean()), float((order[:, :5] == truth[:, None]).any(axis=1).mean())

    def index_rates(x: F, whiten: bool = False) -> tuple[float, float]:
        index = CatalogIndex(x[:n_ref], ref_skus, whiten=whiten, approximate="never")
        results = index.search(x[n_ref:], top=5)
        top1 = np.mean([r.top[0].sku == s for r, (_, s) in zip(results, queries, strict=True)])
        top5 = np.mean([s in {m.sku for m in r.top} for r, (_, s) in zip(results, queries, strict=True)])
        return float(top1), float(top5)

    def aggregated(x: F, how: Callable[[F], F]) -> tuple[float, float]:
        x = l2(x)
        scores = x[n_ref:] @ x[:n_ref].T
        return rates(np.stack([how(scores[:, ref_ids == k]) for k in range(len(skus))], axis=1))

    def prototype(x: F) -> tuple[float, float]:
        x = l2(x)
        protos = l2(np.stack([x[:n_ref][ref_ids == k].mean(axis=0) for k in range(len(skus))]))
        return rates(x[n_ref:] @ protos.T)

    def query_expansion(x: F, k: int) -> tuple[float, float]:
        x = l2(x)
        r, q = x[:n_ref], x[n_ref:]
        s = q @ r.T
        top = np.argsort(-s, axis=1)[:, :k]
        w = np.maximum(np.take_along_axis(s, top, 1), 0) ** 3
        return index_rates(np.concatenate([r, l2(q + (r[top] * w[..., None]).sum(axis=1))]))

    def pca_whitened(x: F, dim: int, shrink: float) -> tuple[float, float]:
        x = l2(x)
        z = x - x[:n_ref].mean(axis=0)
        _, s, vt = np.linalg.svd(z[:n_ref], full_matrices=False)
        var = s**2 / n_ref
        dim = min(dim, len(s))
        return prototype(z @ (vt[:dim] / np.sqrt(var[:dim] + shrink * var[:dim].mean())[:, None]).T)

    rows: list[tuple[str, tuple[float, float]]] = [
        ("GAP of the last feature map (the shipped 'embedding')", index_rates(full["gap"])),
        *[(f"GeM p={p}", index_rates(full[f"gem{p}"])) for p in (2, 3, 4)],
        ("max pooling", index_rates(full["max"])),
        ("block 14 output, average pooled (192-d)", index_rates(full["block14"])),
        ("block 10 output, average pooled (112-d)", index_rates(full["block10"])),
        ("flip averaged", index_rates(l2(full["gap"]) + l2(flip["gap"]))),
        ("centre crop 80 %", index_rates(c80["gap"])),
        ("per SKU: mean of top-2 references", aggregated(full["gap"], lambda s: np.sort(s, 1)[:, -2:].mean(1))),
        ("per SKU: mean of all references", aggregated(full["gap"], lambda s: s.mean(1))),
        ("per SKU: prototype (mean reference vector)", prototype(full["gap"])),
        *[(f"alpha query expansion, top {k}", query_expansion(full["gap"], k)) for k in (1, 2, 3)],
        *[(f"PCA whitening {d} d, shrink 0.1, prototype", pca_whitened(full["gap"], d, 0.1)) for d in (64, 128, 185)],
        ("LDA catalogue whitening (shipped, whitening: true)", index_rates(full["gap"], whiten=True)),
        ("LDA whitening + flip averaged", index_rates(l2(full["gap"]) + l2(flip["gap"]), whiten=True)),
        ("LDA whitening + centre crop 80 %", index_rates(c80["gap"], whiten=True)),
    ]
    for name, (top1, top5) in rows:
        print(f"{name:56s} top-1 {top1:.3f}  top-5 {top5:.3f}")


if __name__ == "__main__":
    main()
