"""Suite-wide settings: headless MuJoCo rendering, quiet threads on the 2-core CI machine."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
