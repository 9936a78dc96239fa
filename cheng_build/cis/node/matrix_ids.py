"""Matrix names as a cis command gives them: ``--user:alice`` or ``@alice:server``, ``--room:cis``
or ``#cis:server`` (no import of any Matrix library: both halves of the transport use them)."""

from __future__ import annotations


def is_user(user_id: str, user: str) -> bool:
    """Is the Matrix id ``user_id`` the ``--user`` given (``name`` or ``@name:server``)?"""
    return user_id == user or user_id.startswith(f"@{user}:")


def full_alias(room: str, user_id: str) -> str:
    """``cis`` or ``#cis`` -> ``#cis:<the user's server>``; a full alias or room id is kept."""
    if room.startswith("!") or (room.startswith("#") and ":" in room):
        return room
    server = user_id.split(":", 1)[1] if ":" in user_id else ""
    return f"#{room.lstrip('#')}:{server}"
