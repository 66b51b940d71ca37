"""brightscan: bright-transient scoring of ZTF alerts with a multi-input CNN (BTSbot)."""

__version__ = "0.1.0"
