"""The face pipeline: per-camera tracks of faces, decisions over several frames, shopper events."""
