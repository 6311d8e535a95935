"""World families (grid, arm) and the built-in catalogue."""
