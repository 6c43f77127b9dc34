"""The ``emox-edge`` command line."""
