"""Commands the hub sends a terminal (``cmd/<name>``): one explicit table, answered by the daemon's main loop.

Adding a command: write its handler and ``Command`` in the module of its
concern (``core.py`` for the terminal itself, ``members.py`` for the gallery)
and add it to ``COMMANDS`` below; docs/mqtt.md lists it once regenerated.
"""

from agent.commands.base import Command, table
from agent.commands.core import APPLY_CONFIG, OUTBOX_STATS, PING, RELOAD_CONFIG, SET_LOG_LEVEL
from agent.commands.members import ENROLL_MEMBER, ERASE_MEMBER, LIST_MEMBERS

COMMANDS: dict[str, Command] = table(
    PING,
    RELOAD_CONFIG,
    APPLY_CONFIG,
    SET_LOG_LEVEL,
    OUTBOX_STATS,
    ENROLL_MEMBER,
    ERASE_MEMBER,
    LIST_MEMBERS,
)
