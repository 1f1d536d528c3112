# crl_ros: the two commands are `make demo` and `make test`; both set up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)

.PHONY: setup test demo bench data-widowx bench-widowx bench-paper clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q test

demo: setup
	$(VENV)/bin/crl demo

bench: setup
	$(PY) bench/train_throughput.py
	$(PY) bench/learning.py --env pointmass

# The WidowX learning table (docs/results.md): the cpu profile (hours on 2 cores), or the paper's scale (GPU).
# The data (about 4 minutes on 2 cores): every task's scripted demos, play, and extra reach demos.
WIDOWX_DATA := data/widowx_tasks_1400.h5 data/widowx_play_rest_300.h5 data/widowx_reach_2000.h5
data-widowx: $(WIDOWX_DATA)

bench-widowx: setup $(WIDOWX_DATA)
	$(PY) bench/learning.py --env widowx --profile cpu --data $(WIDOWX_DATA) --resume \
		--out bench/results/learning_widowx_cpu_data2.json --workdir runs/bench_learning_widowx_cpu_data2
	$(PY) bench/learning_report.py bench/results/learning_widowx_cpu_data2.json \
		--chart docs/images/learning_widowx_cpu_data2.png

data/widowx_tasks_1400.h5: | setup
	$(VENV)/bin/crl demos --env widowx --task all --episodes 1400 --out $@ --seed 2 --workers 2
data/widowx_play_rest_300.h5: | setup
	$(VENV)/bin/crl demos --env widowx --play --episodes 300 --out $@ --seed 1 --workers 2
data/widowx_reach_2000.h5: | setup
	$(VENV)/bin/crl demos --env widowx --task reach --episodes 2000 --out $@ --seed 3 --workers 2

bench-paper: setup
	$(PY) bench/train_throughput.py --device cuda --precisions bf16 --breakdown --out bench/results/train_throughput_cuda.json
	$(PY) bench/learning.py --env widowx --profile paper --resume
	$(PY) bench/learning_report.py bench/results/learning_widowx_paper.json --chart docs/images/learning_widowx_paper.png

clean:
	rm -rf $(VENV) build install log *.egg-info
