"""autoworld: executable, validated worlds from a sentence, and agents that learn in them.

Importing the package registers every catalogue world with Gymnasium
(``gymnasium.make("autoworld/DoorKey-8x8-v0")``).
"""

from __future__ import annotations

from autoworld.registration import register_envs as _register_envs

__version__ = "0.1.0"

_register_envs()
