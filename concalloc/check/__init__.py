"""Checkers: validators and oracles that can fail, and the Violation they raise."""

from .violation import Violation, replay_context, set_replay_command

__all__ = ["Violation", "replay_context", "set_replay_command"]
