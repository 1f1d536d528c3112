"""Suite-wide settings: headless MuJoCo rendering, quiet threads on the 2-core CI machine."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# One math thread per process: tests start node processes beside the test process, and on
# 2 cores oversubscribed torch threads run many times slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
