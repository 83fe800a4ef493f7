"""Motion: a cheap frame-difference detector, one ``scene.motion`` event when motion starts and when it ends."""

from agent.pipelines.base import PipelinePlugin
from agent.pipelines.motion.events import MotionEvent
from agent.pipelines.motion.settings import MotionSettings

PLUGIN = PipelinePlugin(
    name="motion",
    settings=MotionSettings,
    build="agent.pipelines.motion.stage:build",
    event_types=(MotionEvent,),
)
