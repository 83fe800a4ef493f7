"""People and scene analytics: line crossings, zones, dwell, occupancy, queues; re-linking identified members."""

from agent.pipelines.base import PipelinePlugin
from agent.pipelines.people.events import (
    PersonEntered,
    PersonExited,
    QueueLength,
    ZoneEntered,
    ZoneLeft,
    ZoneOccupancy,
)
from agent.pipelines.people.settings import PeopleSettings

PLUGIN = PipelinePlugin(
    name="people",
    settings=PeopleSettings,
    build="agent.pipelines.people.stage:build",
    event_types=(PersonEntered, PersonExited, ZoneEntered, ZoneLeft, ZoneOccupancy, QueueLength),
)
