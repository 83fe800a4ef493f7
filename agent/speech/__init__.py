"""Offline speech intents: utterances from microphones become ``speech.intent`` events, nothing more."""
