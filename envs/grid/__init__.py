"""The grid family: components, batched engine, layouts, levels, oracle, rendering."""
