import os

# NumPy's OpenBLAS spins a thread per core on every small matrix operation; the planner's matrices are tiny
# (a few hundred columns), and on a shared two-core host those spinning threads made one 100x100 solve take
# 6 ms instead of 0.05 ms. Set before anything imports NumPy; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from advisor.celery import app as celery_app

__all__ = ("celery_app",)
