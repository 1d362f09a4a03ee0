"""The performance model: what a deployment is (deployment), whether it fits (memory), how long one engine step
takes (step), the efficiencies that step time is scaled by (efficiency), fixed-length closed forms (steady),
continuous batching under load (batching), the published corpus (corpus) and the fit against it (calibration),
and one prediction with provenance (predict). Pure Python and NumPy; no Django.

Data flows one way: deployment -> memory -> step -> steady/batching; efficiency feeds step; calibration fits
efficiency against the corpus by calling steady; predict asks calibration for efficiencies and the error band.
"""
