"""Grid components, registered by name on import (see ``registry``)."""

from autoworld.envs.grid.components import observation, reward, transition  # noqa: F401
from autoworld.envs.grid.components.registry import REGISTRY, GridComponent, components_of

__all__ = ["REGISTRY", "GridComponent", "components_of"]
