"""Open-set face identification, tuned on one set of identities and reported on another.

Usage::

    PYTHONPATH=. python bench/face_eval.py CACHE.npz [--extra NAME=EMB.npz ...] [--members 50] [--enrol 3]

``CACHE.npz`` comes from ``bench/face_eval_cache.py`` (every face of every
photo measured once by the shipped analyzer, gates open); ``--extra`` adds
another embedder's vectors for the same faces (``bench/face_embed_extra.py``).

The discipline (docs/face-eval.md):

- identities are split, never photos: a fixed permutation (``SEED``) puts half
  of them in the tuning part and half in the reporting part; thresholds, margin
  and gate choices are made on the tuning part only;
- inside a part, rotations of ``--members`` members each: the members enrol
  the first ``--enrol`` photos that the enrolment judge accepts (the rule of
  ``agent.identity.enrollment.judge_image``: one face, gates, liveness), their
  other photos are genuine probes (the best detection of each), and every photo
  of the part's other identities is an impostor photo (any face accepted as a
  member is a false accept);
- a probe is decided as ``store-agent identify`` does: quality gates
  (:func:`models.face.quality.gate`), liveness, then best member by cosine
  (max over the member's templates) with threshold and margin
  (:mod:`models.face.match`);
- figures: identification rate (genuine photos identified as their member),
  false-positive identification rate (impostor photos accepted as some member),
  closed-set rank-1, FNMR at FMR 1e-3 / 1e-4 per member comparison, and what
  each gate costs and buys; then the same over "tracks" of several photos.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.face.calibrate import (
    best_two,
    fuse,
    member_scores,
    per_member_rate,
    resolvable,
    templates_with_mirrors,
    threshold_for_rate,
)
from models.face.quality import QualityThresholds, gate, rank_score
from models.vectors import l2_normalise

#: The split seed (issue 15). Identities sorted by name, permuted with this seed; first half tunes, second reports.
SEED = 15
#: The defaults shipped before issue 15 (agent/pipelines/face/settings.py FaceSettings) that the "shipped" rows replay.
SHIPPED = {"match_threshold": 0.40, "match_margin": 0.05, "liveness_threshold": 0.5}
SHIPPED_GATES = QualityThresholds()
FloatArray = npt.NDArray[np.float32]


@dataclass
class Faces:
    """Every stored face: per-face measures and embeddings, per-photo identity and face count."""

    photo: npt.NDArray[np.int32]
    face: npt.NDArray[np.int32]
    size: FloatArray
    sharpness: FloatArray
    yaw: FloatArray
    roll: FloatArray
    pitch: FloatArray
    liveness: FloatArray
    vectors: dict[str, tuple[FloatArray, FloatArray]]
    identity: npt.NDArray[np.str_]
    path: npt.NDArray[np.str_]
    n_faces: npt.NDArray[np.int32]
    extra: dict[str, FloatArray] = field(default_factory=dict)
    by_photo: list[npt.NDArray[np.intp]] = field(default_factory=list)

    def __post_init__(self) -> None:
        order = np.argsort(self.photo, kind="stable")
        bounds = np.searchsorted(self.photo[order], np.arange(len(self.path) + 1))
        self.by_photo = [order[bounds[i] : bounds[i + 1]] for i in range(len(self.path))]


def load(cache: Path, extra: dict[str, Path]) -> Faces:
    d = np.load(cache)
    vectors = {"sface": (d["embedding"], d["embedding_flip"])}
    for name, path in extra.items():
        e = np.load(path)
        if len(e["embedding"]) != len(d["photo"]):
            raise SystemExit(f"{path}: {len(e['embedding'])} vectors for {len(d['photo'])} faces")
        vectors[name] = (e["embedding"], e["embedding_flip"])
    return Faces(
        d["photo"],
        d["face"],
        d["size"],
        d["sharpness"],
        d["yaw"],
        d["roll"],
        d["pitch"],
        d["liveness"],
        vectors,
        d["identity"],
        d["path"],
        d["n_faces"],
        {k: d[k] for k in ("thumb",) if k in d},
    )


#: Aligned-face thumbnails this correlated are one photo (the same shot filed twice, maybe re-cropped).
SAME_PHOTO = 0.95


def clean_labels(faces: Faces) -> dict[str, str | None]:
    """Identity label repairs decided without any embedder: identity -> its label (None: dropped).

    CelebA files some photos under two identities. Two identities holding the
    same photo (aligned-face thumbnails correlated above ``SAME_PHOTO``) are
    one person and are merged; an identity sharing photos with two or more
    others is a mixed folder and is dropped. Look-alikes that share no photo stay
    separate: they are real impostors.
    """
    names = sorted(set(faces.identity.tolist()))
    label: dict[str, str | None] = {n: n for n in names}
    if "thumb" not in faces.extra:
        return label
    first = np.array([r[0] for r in faces.by_photo if r.size])
    thumbs = faces.extra["thumb"][first]
    who = faces.identity[faces.photo[first]]
    links: dict[str, set[str]] = {n: set() for n in names}
    corr = thumbs @ thumbs.T
    for a, b in zip(*np.nonzero(np.triu(corr > SAME_PHOTO, 1)), strict=True):
        if who[a] != who[b]:
            links[str(who[a])].add(str(who[b]))
            links[str(who[b])].add(str(who[a]))
    for n, linked in links.items():
        if len(linked) >= 2:
            label[n] = None
    for n, linked in links.items():
        if label[n] is None:
            continue
        partners = [m for m in linked if label[m] is not None]
        if partners:
            label[n] = min([n, *partners])
    return label


#: Photos checked by eye to show someone other than their folder's identity (CelebA label errors), never used.
#: 7450/026072.jpg shows the person of 7433 (it alone gave 24 of the tuning split's impostor pairs above 0.6).
MISLABELLED = frozenset({"7450/026072.jpg"})


def apply_labels(faces: Faces, label: dict[str, str | None]) -> None:
    """Rename merged identities; a dropped identity's (or mislabelled) photos get the empty label: never used."""
    faces.identity = np.array(
        [
            "" if path in MISLABELLED else (label[who] or "")
            for who, path in zip(faces.identity.tolist(), faces.path.tolist(), strict=True)
        ]
    )


def split_identities(identities: npt.NDArray[np.str_], seed: int = SEED) -> tuple[list[str], list[str]]:
    """(tuning, reporting) identity lists: sorted names, one fixed permutation, halves."""
    names = sorted(set(identities.tolist()) - {""})
    perm = np.random.default_rng(seed).permutation(len(names))
    ordered = [names[i] for i in perm]
    half = len(ordered) // 2
    return ordered[:half], ordered[half:]


@dataclass(frozen=True)
class Setting:
    """One complete decision configuration (what the agent's face settings would be)."""

    embedder: str = "sface"
    gates: QualityThresholds = SHIPPED_GATES
    liveness: float = SHIPPED["liveness_threshold"]
    threshold: float = SHIPPED["match_threshold"]
    margin: float = SHIPPED["match_margin"]
    mirrors: bool = False
    multi_face_px: float | None = None  # enrolment: refuse photos with >1 face this big (None: gates.min_face_px)

    def label(self) -> str:
        g = self.gates
        return (
            f"{self.embedder} thr={self.threshold:.3f} margin={self.margin:.2f} live={self.liveness:.2f}"
            f" min_px={g.min_face_px:.0f} sharp={g.min_sharpness:.0f} yaw={g.max_yaw:.2f}"
            f" mirrors={'on' if self.mirrors else 'off'}"
        )


def embeddings(faces: Faces, name: str) -> tuple[FloatArray, FloatArray]:
    """The vectors of embedder ``name``; ``a+b@w`` fuses two embedders with weight w on the first."""
    if "+" in name:
        pair, _, weight = name.partition("@")
        first, second = pair.split("+")
        w = float(weight or 0.5)
        e1, f1 = faces.vectors[first]
        e2, f2 = faces.vectors[second]
        return fuse([e1, e2], [w, 1 - w]), fuse([f1, f2], [w, 1 - w])
    return faces.vectors[name]


def gate_reasons(faces: Faces, t: QualityThresholds) -> list[str | None]:
    return [
        gate(float(s), float(h), float(y), float(r), float(p), t)
        for s, h, y, r, p in zip(faces.size, faces.sharpness, faces.yaw, faces.roll, faces.pitch, strict=True)
    ]


def judge(faces: Faces, photo: int, setting: Setting, reasons: list[str | None]) -> int | None:
    """The face index an enrolment would store for this photo, or None (``judge_image``'s rule)."""
    rows = faces.by_photo[photo]
    if rows.size == 0:
        return None
    big_px = setting.gates.min_face_px if setting.multi_face_px is None else setting.multi_face_px
    big = [int(r) for r in rows if faces.size[r] >= big_px]
    if len(big) > 1:
        return None
    chosen = big[0] if big else int(rows[0])
    if reasons[chosen] is not None or faces.liveness[chosen] < setting.liveness:
        return None
    return chosen


@dataclass
class Rotation:
    """One gallery: members' templates and the genuine / impostor probe faces."""

    members: list[str]
    template_faces: list[list[int]]  # per member: enrolled face rows
    genuine: list[tuple[int, int]]  # (face row, member index)
    impostor: list[tuple[int, int]]  # (face row, photo)
    refused_enrolment_photos: int = 0


def rotations(faces: Faces, ids: list[str], setting: Setting, n_members: int, n_enrol: int) -> Iterator[Rotation]:
    """Disjoint galleries of ``n_members`` over ``ids``; the rest of ``ids`` are strangers in each."""
    reasons = gate_reasons(faces, setting.gates)
    photos_of: dict[str, list[int]] = {}
    for p, who in enumerate(faces.identity.tolist()):
        photos_of.setdefault(who, []).append(p)
    for start in range(0, len(ids) - n_members + 1, n_members):
        members = ids[start : start + n_members]
        strangers = [i for i in ids if i not in members]
        rot = Rotation(members, [], [], [])
        for m, who in enumerate(members):
            enrolled: list[int] = []
            used = 0
            for p in photos_of[who]:
                if len(enrolled) == n_enrol:
                    break
                used += 1
                chosen = judge(faces, p, setting, reasons)
                if chosen is None:
                    rot.refused_enrolment_photos += 1
                else:
                    enrolled.append(chosen)
            rot.template_faces.append(enrolled)
            for p in photos_of[who][used:]:
                rows = faces.by_photo[p]
                if rows.size:
                    rot.genuine.append((int(rows[0]), m))
                else:
                    rot.genuine.append((-1, m))  # no face found: a miss
        for who in strangers:
            for p in photos_of[who]:
                rot.impostor += [(int(r), p) for r in faces.by_photo[p]] or [(-1, p)]
        yield rot


@dataclass
class Outcome:
    genuine: int = 0
    identified: int = 0
    no_face: int = 0
    gated: int = 0
    not_live: int = 0
    below: int = 0
    wrong: int = 0
    rank1_hits: int = 0
    rank1_n: int = 0
    impostor_photos: int = 0
    false_accepts: int = 0
    gated_by: dict[str, int] = field(default_factory=dict)
    fa_scores: list[float] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, int):
                setattr(self, f.name, a + b)
            elif isinstance(a, dict):
                for k, v in b.items():
                    a[k] = a.get(k, 0) + v
            else:
                a.extend(b)

    @property
    def dir(self) -> float:
        return self.identified / max(self.genuine, 1)

    @property
    def fpir(self) -> float:
        return self.false_accepts / max(self.impostor_photos, 1)

    def line(self) -> str:
        return (
            f"identified {self.identified}/{self.genuine} = {self.dir:.3f} (no face {self.no_face}, gated {self.gated},"
            f" not live {self.not_live}, below thr/margin {self.below}, wrong member {self.wrong});"
            f" rank-1 closed-set {self.rank1_hits}/{self.rank1_n} = {self.rank1_hits / max(self.rank1_n, 1):.3f};"
            f" impostor photos accepted {self.false_accepts}/{self.impostor_photos} = {self.fpir:.4f}"
        )


def gallery(faces: Faces, rot: Rotation, setting: Setting) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    emb, flip = embeddings(faces, setting.embedder)
    vecs, owners = [], []
    for m, rows in enumerate(rot.template_faces):
        if not rows:
            continue
        t = templates_with_mirrors(emb[rows], flip[rows] if setting.mirrors else None)
        vecs.append(t)
        owners += [m] * len(t)
    return np.concatenate(vecs), np.array(owners, np.intp)


def evaluate(faces: Faces, rot: Rotation, setting: Setting) -> Outcome:
    emb, _ = embeddings(faces, setting.embedder)
    templates, owners = gallery(faces, rot, setting)
    n = len(rot.members)
    reasons = gate_reasons(faces, setting.gates)
    out = Outcome()
    rows_g = np.array([r for r, _ in rot.genuine])
    valid = rows_g >= 0
    scores = member_scores(emb[np.where(valid, rows_g, 0)], templates, owners, n)
    best, top, margin = best_two(scores)
    for i, (row, m) in enumerate(rot.genuine):
        out.genuine += 1
        if row < 0:
            out.no_face += 1
            continue
        out.rank1_n += 1
        out.rank1_hits += int(best[i] == m)
        if reasons[row] is not None:
            out.gated += 1
            key = reasons[row].split(" (")[0]  # type: ignore[union-attr]
            out.gated_by[key] = out.gated_by.get(key, 0) + 1
        elif faces.liveness[row] < setting.liveness:
            out.not_live += 1
        elif top[i] < setting.threshold or margin[i] < setting.margin:
            out.below += 1
        elif best[i] != m:
            out.wrong += 1
        else:
            out.identified += 1
    rows_i = np.array([r for r, _ in rot.impostor])
    scores_i = member_scores(emb[np.where(rows_i >= 0, rows_i, 0)], templates, owners, n)
    _, top_i, margin_i = best_two(scores_i)
    accepted: dict[int, float] = {}
    photos: set[int] = set()
    for i, (row, photo) in enumerate(rot.impostor):
        photos.add(photo)
        if row < 0 or reasons[row] is not None or faces.liveness[row] < setting.liveness:
            continue
        if top_i[i] >= setting.threshold and margin_i[i] >= setting.margin:
            accepted[photo] = max(accepted.get(photo, -1.0), float(top_i[i]))
    out.impostor_photos = len(photos)
    out.false_accepts = len(accepted)
    out.fa_scores = sorted(accepted.values())
    return out


def run(faces: Faces, ids: list[str], setting: Setting, n_members: int, n_enrol: int) -> Outcome:
    total = Outcome()
    for rot in rotations(faces, ids, setting, n_members, n_enrol):
        total.add(evaluate(faces, rot, setting))
    return total


def comparison_scores(
    faces: Faces, ids: list[str], setting: Setting, n_members: int, n_enrol: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per member comparison of gate-passing live probes: genuine scores, impostor scores, and the
    best-member score of every impostor face (what the threshold sees in open set)."""
    emb, _ = embeddings(faces, setting.embedder)
    reasons = gate_reasons(faces, setting.gates)
    gen, imp, best_imp = [], [], []
    for rot in rotations(faces, ids, setting, n_members, n_enrol):
        templates, owners = gallery(faces, rot, setting)
        n = len(rot.members)
        ok = [(r, m) for r, m in rot.genuine if r >= 0 and reasons[r] is None and faces.liveness[r] >= setting.liveness]
        rows = np.array([r for r, _ in ok])
        own = np.array([m for _, m in ok])
        s = member_scores(emb[rows], templates, owners, n)
        mask = np.zeros_like(s, bool)
        mask[np.arange(len(s)), own] = True
        gen.append(s[mask])
        imp.append(s[~mask])
        rows_i = np.array(
            [r for r, _ in rot.impostor if r >= 0 and reasons[r] is None and faces.liveness[r] >= setting.liveness]
        )
        si = member_scores(emb[rows_i], templates, owners, n)
        imp.append(si.reshape(-1))
        best_imp.append(si.max(axis=1))
    return np.concatenate(gen), np.concatenate(imp), np.concatenate(best_imp)


def tuned_threshold(
    faces: Faces, tune_ids: list[str], setting: Setting, n_members: int, n_enrol: int, fpir: float
) -> tuple[float, float]:
    """Threshold for ``fpir`` at ``n_members`` members from the tuning split only: the (1 - fpir) quantile of
    impostor faces' best-member scores; also the per-member-comparison threshold the gallery-size rule gives."""
    _, imp, best_imp = comparison_scores(faces, tune_ids, setting, n_members, n_enrol)
    per_member = threshold_for_rate(imp, per_member_rate(fpir, n_members))
    return threshold_for_rate(best_imp, fpir), per_member


def tracks(
    faces: Faces, ids: list[str], setting: Setting, n_members: int, n_enrol: int, frames: int, min_frames: int
) -> tuple[list[tuple[float, float, float, bool]], list[tuple[float, float, float]], int, int]:
    """Several photos of one person as one track, decided as ``agent.pipelines.face.tracker`` decides.

    A track is ``frames`` consecutive probe photos of one identity (best face
    each). Faces that pass the gates are its good frames; with at least
    ``min_frames`` of them its liveness is their mean and its embedding the
    mean of the best ``best_frames`` (5) by quality. Returns per genuine track
    (score, margin, liveness, right member), per impostor track (score, margin,
    liveness), and how many tracks of each kind had too few good frames.
    """
    emb, _ = embeddings(faces, setting.embedder)
    reasons = gate_reasons(faces, setting.gates)
    genuine: list[tuple[float, float, float, bool]] = []
    impostor: list[tuple[float, float, float]] = []
    short_g = short_i = 0
    for rot in rotations(faces, ids, setting, n_members, n_enrol):
        templates, owners = gallery(faces, rot, setting)
        n = len(rot.members)
        groups: list[tuple[list[int], int | None]] = []
        per_member: dict[int, list[int]] = {}
        for row, m in rot.genuine:
            per_member.setdefault(m, []).append(row)
        for m, rows in per_member.items():
            groups += [(rows[i : i + frames], m) for i in range(0, len(rows) - frames + 1, frames)]
        per_photo = {p: r for r, p in reversed(rot.impostor)}  # the best (first) face of each impostor photo
        per_stranger: dict[str, list[int]] = {}
        for p, r in sorted(per_photo.items()):
            per_stranger.setdefault(str(faces.identity[p]), []).append(r)
        for rows in per_stranger.values():
            groups += [(rows[i : i + frames], None) for i in range(0, len(rows) - frames + 1, frames)]
        for rows, owner in groups:
            good = [r for r in rows if r >= 0 and reasons[r] is None]
            if len(good) < min_frames:
                if owner is None:
                    short_i += 1
                else:
                    short_g += 1
                continue
            ranked = sorted(
                good,
                key=lambda r: (
                    -rank_score(float(faces.size[r]), float(faces.sharpness[r]), float(faces.yaw[r]), setting.gates)
                ),
            )[:5]
            vec = l2_normalise(emb[ranked].mean(axis=0))[None]
            best, top, margin = best_two(member_scores(vec, templates, owners, n))
            live = float(np.mean(faces.liveness[good]))
            if owner is None:
                impostor.append((float(top[0]), float(margin[0]), live))
            else:
                genuine.append((float(top[0]), float(margin[0]), live, bool(best[0] == owner)))
    return genuine, impostor, short_g, short_i


def track_report(
    faces: Faces, tune: list[str], report: list[str], setting: Setting, args: argparse.Namespace, frames: int
) -> str:
    """Tune the track threshold on tuning tracks (FPIR target), report on reporting tracks."""
    min_frames = min(frames, 2)
    g, i, _, _ = tracks(faces, tune, setting, args.members, args.enrol, frames, min_frames)
    live_imp = np.array([t for t, mg, lv in i if lv >= setting.liveness and mg >= setting.margin])
    thr = threshold_for_rate(live_imp, args.fpir) if live_imp.size else setting.threshold
    g, i, short_g, short_i = tracks(faces, report, setting, args.members, args.enrol, frames, min_frames)
    ok = sum(t >= thr and mg >= setting.margin and lv >= setting.liveness and right for t, mg, lv, right in g)
    fa = sum(t >= thr and mg >= setting.margin and lv >= setting.liveness for t, mg, lv in i)
    return (
        f"tracks of {frames} photos (decide on >= {min_frames} good): threshold {thr:.3f} (tuned);"
        f" identified {ok}/{len(g) + short_g} = {ok / max(len(g) + short_g, 1):.3f},"
        f" impostor tracks accepted {fa}/{len(i) + short_i} = {fa / max(len(i) + short_i, 1):.4f}"
    )


def fnmr_at(gen: FloatArray, imp: FloatArray, fmr: float) -> tuple[float, float]:
    thr = threshold_for_rate(imp, fmr)
    return float(np.mean(gen < thr)), thr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="NAME=EMB.npz: another embedder's vectors")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--enrol", type=int, default=3)
    parser.add_argument("--fpir", type=float, default=1e-3, help="target false-positive identification rate")
    parser.add_argument("--embedders", default="sface", help="comma-separated embedders (or a+b@w fusions) to tune")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.extra)
    faces = load(args.cache, {k: Path(v) for k, v in extra.items()})
    label = clean_labels(faces)
    dropped = sorted(k for k, v in label.items() if v is None)
    merged = sorted(f"{k}->{v}" for k, v in label.items() if v is not None and v != k)
    apply_labels(faces, label)
    print(f"label repairs (same photo under two identities, no embedder used): dropped {dropped}, merged {merged}")
    tune, report = split_identities(faces.identity)
    n_photos = {part: int(np.isin(faces.identity, ids).sum()) for part, ids in (("tune", tune), ("report", report))}
    print(
        f"{args.cache.name}: {len(faces.path)} photos, {len(faces.photo)} faces, {len(tune) + len(report)} identities"
    )
    print(
        f"split (seed {SEED}): tuning {len(tune)} identities / {n_photos['tune']} photos,"
        f" reporting {len(report)} identities / {n_photos['report']} photos"
    )
    print(
        f"protocol: rotations of {args.members} members x {args.enrol} enrolment photos; the part's other"
        f" identities are strangers; target FPIR {args.fpir:g}"
    )
    figures: dict[str, object] = {"split_seed": SEED, "tuning_ids": tune, "reporting_ids": report}

    shipped = Setting()
    for part, ids in (("tuning", tune), ("reporting", report)):
        outcome = run(faces, ids, shipped, args.members, args.enrol)
        print(f"\n[{part}] shipped defaults ({shipped.label()}):\n  {outcome.line()}")

    print("\n[reporting] verification, per member comparison (genuine probe vs own member; impostor vs others):")
    for name in args.embedders.split(","):
        s = Setting(embedder=name, gates=SHIPPED_GATES)
        gen, imp, _ = comparison_scores(faces, report, s, args.members, args.enrol)
        parts = []
        for fmr in (1e-3, 1e-4):
            fnmr, thr = fnmr_at(gen, imp, fmr)
            ok = "" if resolvable(fmr, imp.size) else " (unresolved)"
            parts.append(f"FNMR@FMR{fmr:g} = {fnmr:.4f} (cos {thr:.3f}){ok}")
        print(f"  {name}: {gen.size} genuine / {imp.size} impostor comparisons; " + "; ".join(parts))

    print(
        f"\n[tuning] threshold for FPIR {args.fpir:g} at {args.members} members, per embedder, gates, mirrors, margin"
    )
    candidates: list[tuple[float, Setting, Outcome]] = []
    gate_options = {
        "shipped gates": SHIPPED_GATES,
        "no yaw gate": dataclasses.replace(SHIPPED_GATES, max_yaw=100.0),
        "no yaw, min 32 px": dataclasses.replace(SHIPPED_GATES, max_yaw=100.0, min_face_px=32.0),
        "yaw 0.6, min 32 px": dataclasses.replace(SHIPPED_GATES, max_yaw=0.6, min_face_px=32.0),
    }
    for name in args.embedders.split(","):
        for gname, gates in gate_options.items():
            for mirrors in (False, True):
                for margin in (0.0, 0.05):
                    s = Setting(embedder=name, gates=gates, mirrors=mirrors, margin=margin)
                    thr, per_member = tuned_threshold(faces, tune, s, args.members, args.enrol, args.fpir)
                    s = dataclasses.replace(s, threshold=round(thr, 3))
                    o = run(faces, tune, s, args.members, args.enrol)
                    candidates.append((o.dir if o.fpir <= args.fpir else -1.0, s, o))
                    print(
                        f"  {gname:18s} {s.label()} (per-member rule {per_member:.3f}): DIR {o.dir:.3f}"
                        f" FPIR {o.fpir:.4f} ({o.false_accepts}/{o.impostor_photos})"
                    )
    candidates.sort(key=lambda c: -c[0])
    chosen = candidates[0][1]
    print(f"\nchosen on the tuning split: {chosen.label()}")
    best_per_embedder: dict[str, Setting] = {}
    for _, s, _ in candidates:
        best_per_embedder.setdefault(s.embedder, s)
    for name, s in best_per_embedder.items():
        o = run(faces, report, s, args.members, args.enrol)
        print(f"[reporting] best {name} setting ({s.label()}):\n  {o.line()}")
        print(f"  false accepts' best scores: {[round(x, 3) for x in o.fa_scores]}; gated by {o.gated_by}")
        nl = run(faces, report, dataclasses.replace(s, liveness=0.0), args.members, args.enrol)
        print(f"  the same without the liveness check (recognition alone): {nl.line()}")
        figures[f"best_{name}"] = {"setting": s.label(), "report": dataclasses.asdict(o)}
        for frames in (3, 5):
            print(f"  {track_report(faces, tune, report, s, args, frames)}")
    _, imp, _ = comparison_scores(faces, tune, chosen, args.members, args.enrol)
    rows = []
    for n in (10, 25, 50, 100, 200):
        rate = per_member_rate(args.fpir, n)
        flag = "" if resolvable(rate, imp.size) else " (past what the tuning split resolves)"
        rows.append(f"N={n}: {threshold_for_rate(imp, rate):.3f}{flag}")
    print(
        f"\n[tuning] threshold for FPIR {args.fpir:g} by gallery size (per-member rule, chosen setting): "
        + ", ".join(rows)
    )
    base = run(faces, report, chosen, args.members, args.enrol)
    print("\n[reporting] each gate of the chosen setting turned off alone (identified gained, false accepts bought):")
    offs = {
        "min_face_px": dataclasses.replace(chosen.gates, min_face_px=1.0),
        "min_sharpness": dataclasses.replace(chosen.gates, min_sharpness=0.0),
        "max_yaw": dataclasses.replace(chosen.gates, max_yaw=100.0),
        "max_roll_deg": dataclasses.replace(chosen.gates, max_roll_deg=180.0),
        "pitch_range": dataclasses.replace(chosen.gates, pitch_range=(-1e9, 1e9)),
    }
    for gname, gates in offs.items():
        oo = run(faces, report, dataclasses.replace(chosen, gates=gates), args.members, args.enrol)
        print(
            f"  without {gname:14s}: identified {oo.identified - base.identified:+d},"
            f" false accepts {oo.false_accepts - base.false_accepts:+d}"
        )
    oo = run(faces, report, dataclasses.replace(chosen, liveness=0.0), args.members, args.enrol)
    print(
        f"  without liveness      : identified {oo.identified - base.identified:+d},"
        f" false accepts {oo.false_accepts - base.false_accepts:+d} (liveness stops spoofs: not measured here)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
