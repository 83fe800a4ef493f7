"""Builds :class:`agent.pipelines.shared.Shared` from the store config, before any pipeline is built.

Everything pipelines share is created here once, so no pipeline depends on
another being built first: the member gallery (opened, and members whose
consent expired erased, when face is on), the member card identity (when a
card reader is configured), identity fusion, presence at the terminal, re-link
memory, the kiosk frame tap and the person-track inbox (when product is on).
What holds a member's data registers an erasure hook; ``stack`` closes and
unregisters it all after the pipelines.
"""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack
from pathlib import Path

from agent.catalog import CatalogError, load_catalog
from agent.config.schema import StoreConfig
from agent.errors import AgentError
from agent.identity import sync
from agent.identity.cards import CardIdentity, CardIdentityError, load_registry, load_secret
from agent.identity.enrollment import ErasureHook, enforce_retention, register_erasure_hook, unregister_erasure_hook
from agent.identity.fusion import IdentityFusion
from agent.identity.gallery import Gallery
from agent.identity.keys import GalleryKeyError
from agent.identity.presence import RecentMember
from agent.pipelines.face.frames import LatestFrames
from agent.pipelines.face.resources import gallery_path, open_gallery
from agent.pipelines.face.settings import FaceSettings
from agent.pipelines.people.reid import ReidMemory
from agent.pipelines.people.settings import PeopleSettings
from agent.pipelines.product.settings import ProductSettings
from agent.pipelines.serial.stage import card_readers
from agent.pipelines.shared import Devices, Shared
from agent.pipelines.tracks import TrackInbox
from drivers.base import DeviceOptions
from drivers.registry import DeviceKind
from models.runtime import set_engine_cache_dir, set_memory_arena


def _erasure_hook(stack: ExitStack, hook: ErasureHook) -> None:
    register_erasure_hook(hook)
    stack.callback(unregister_erasure_hook, hook)


def card_identity(config: StoreConfig) -> CardIdentity:
    """The store's card secret and member registry (``identity.cards``), or a clear error naming the setting."""
    settings = config.identity.cards
    try:
        secret = load_secret(settings.secret_env, None if settings.secret_env else settings.secret_credential)
        registry = load_registry(settings.registry) if settings.registry is not None else {}
    except CardIdentityError as exc:
        raise AgentError(f"identity.cards: {exc}") from None
    shared = sync.recorder()
    return CardIdentity(secret, registry, shared.journal.card_member if shared is not None else None)


def face_gallery(face: FaceSettings, state_dir: Path) -> Gallery:
    """The member gallery for the face pipeline, or one line naming what is wrong (exit 78, no restart loop):
    no key, a malformed key, or a file that is not a gallery database."""
    try:
        return open_gallery(face, state_dir)
    except GalleryKeyError as exc:
        raise AgentError(f"pipelines.face: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise AgentError(
            f"pipelines.face: the gallery {gallery_path(state_dir)} cannot be read as a database ({exc}); restore it "
            "from a backup, or move it aside and enrol the members again"
        ) from None


def build_shared(config: StoreConfig, stack: ExitStack) -> Shared:
    pipelines = config.pipelines
    face = pipelines.settings(FaceSettings)
    people = pipelines.settings(PeopleSettings)
    by_kind: dict[DeviceKind, list[DeviceOptions]] = {}
    for kind, options in config.devices():
        by_kind.setdefault(kind, []).append(options)
    devices = Devices({kind: tuple(items) for kind, items in by_kind.items()})
    state_dir = Path(config.storage.state_dir)
    set_engine_cache_dir(state_dir / "tensorrt")  # TensorRT engines survive restarts (models/runtime.py)
    set_memory_arena(config.models.memory_arena)

    presence = RecentMember(face.member_window_s)
    _erasure_hook(stack, presence.forget)
    identities = IdentityFusion()
    _erasure_hook(stack, identities.forget_member)
    reid = ReidMemory(
        people.relink_window_s, people.relink_threshold, other_camera_threshold=people.relink_threshold_other_camera
    )
    _erasure_hook(stack, reid.forget_member)

    gallery = None
    if face.enabled:
        gallery = face_gallery(face, state_dir)
        stack.callback(gallery.close)
        enforce_retention(gallery)
    cards = card_identity(config) if card_readers(devices.options("serial")) else None
    product = pipelines.settings(ProductSettings)
    return Shared(
        devices=devices,
        models=config.models.options(),
        state_dir=state_dir,
        privacy=config.privacy.options(),
        presence=presence,
        identities=identities,
        reid=reid,
        frames=LatestFrames(),
        gallery=gallery,
        tracks=TrackInbox() if product.enabled else None,
        cards=cards,
        card_placements={p.reader: (p.camera, p.point) for p in config.identity.cards.placements},
        product_names=product_names(product) if product.enabled else (),
    )


def product_names(settings: ProductSettings) -> tuple[str, ...]:
    """The catalogue's product names (speech is prompted with them); none when it cannot be read (the product
    pipeline reports that itself)."""
    try:
        catalog = load_catalog(Path(settings.catalog_dir))
    except CatalogError:
        return ()
    return tuple(dict.fromkeys(p.info.name for p in catalog.products.values()))
