"""The ``brightscan`` command line: one command group per module, a thin shell over the library."""
