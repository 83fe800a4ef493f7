"""Offline speech intents in Mandarin and English: ``speech.intent`` (never the words, unless configured)."""

from agent.pipelines.base import PipelinePlugin
from agent.pipelines.speech.events import SpeechIntent
from agent.pipelines.speech.settings import SpeechSettings

PLUGIN = PipelinePlugin(
    name="speech",
    settings=SpeechSettings,
    build="agent.pipelines.speech.build:build",
    event_types=(SpeechIntent,),
)
