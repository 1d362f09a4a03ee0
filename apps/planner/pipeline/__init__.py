"""The planning pipeline: candidates -> screen -> capacity -> cost -> rank, one module per stage, typed inputs
and outputs, data moving one way; plan.py runs the stages. The performance model (apps.planner.perf) is called
by the stages, never the reverse. Pure Python; no Django.
"""
