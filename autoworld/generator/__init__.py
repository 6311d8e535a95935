"""World generation: backends (procedural, openai, transformers), repair loop, mutation."""
