"""``brightscan demo``: the whole loop on built-in simulated data, in one command."""

from brightscan.demo.run import DEMO_SIZES, DemoSize, run_demo

__all__ = ["DEMO_SIZES", "DemoSize", "run_demo"]
