"""``brightscan preprocess``: placeholder replaced below."""
