"""The ``autoworld`` command line."""
