"""The ``genphys`` command line."""
