"""GPU-host side of the advisor: hardware probe, engine launchers, dummy weights, load generator, sweeps.

Plain Python: nothing here imports Django, so it runs on an air-gapped GPU host with only this package.
"""
