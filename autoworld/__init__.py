"""autoworld: executable, validated worlds from a sentence, and agents that learn in them.

Importing the package registers every catalogue world with Gymnasium
(``gymnasium.make("autoworld/DoorKey-8x8-v0")``).
"""

from __future__ import annotations

__version__ = "0.1.0"
