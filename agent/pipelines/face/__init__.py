"""Face identification of consenting members: ``shopper.identified``, ``visitor.seen``, ``spoof.suspected``."""

from agent.pipelines.base import PipelinePlugin
from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected, VisitorSeen
from agent.pipelines.face.settings import FaceSettings

PLUGIN = PipelinePlugin(
    name="face",
    settings=FaceSettings,
    build="agent.pipelines.face.stage:build",
    event_types=(ShopperIdentified, VisitorSeen, SpoofSuspected),
)
