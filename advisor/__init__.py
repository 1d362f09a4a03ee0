import os

# NumPy's OpenBLAS spins a thread per core on every small matrix operation; the planner's matrices are tiny
# (a few hundred columns), and on a shared two-core host those spinning threads made one 100x100 solve take
# 6 ms instead of 0.05 ms. Set before anything imports NumPy; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The Celery app (advisor/celery.py) is imported by the modules that define tasks, not here: a process that
# never touches a task (manage.py plan, predict) does not pay Celery's 0.1 s import. `celery -A advisor` finds
# advisor.celery by name.
