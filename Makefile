# crl_ros: the two commands are `make demo` and `make test`; both set up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)

.PHONY: setup test demo bench clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q test

demo: setup
	$(VENV)/bin/crl demo

bench: setup
	$(PY) bench/train_throughput.py
	$(PY) bench/learning.py --env pointmass

clean:
	rm -rf $(VENV) build install log *.egg-info
