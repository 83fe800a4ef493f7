"""People and scene analytics: tracking, zones, lines, dwell, queues, re-identification and identity fusion."""
