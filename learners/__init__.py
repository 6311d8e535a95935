"""Learning methods (Selection / Optimization / Evaluation)."""
