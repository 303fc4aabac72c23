# Two commands do all set-up on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check
STAMP := $(VENV)/.maskprop-setup-done
# torch/torchvision pins: the releases available offline on this project's machines. Set
# TORCH_SPEC="" to keep whatever torch is already in the venv.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup test quickstart lint data clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml tools/install_detectron2.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) $(TORCH_SPEC)
	$(PY) tools/install_detectron2.py --constraints-out $(VENV)/detectron2-constraints.txt
	$(PIP) -c $(VENV)/detectron2-constraints.txt --no-build-isolation -e ".[test,lint]"
	$(PY) -c "import detectron2, maskprop_d2; print('maskprop_d2 ready, detectron2', detectron2.__version__)"
	touch $(STAMP)

test: setup
	$(PY) -m pytest tests -q

lint: setup
	$(PY) -m ruff check maskprop_d2 tests tools demo train_net.py

data: setup
	$(PY) -m maskprop_d2.data.synthetic --out datasets/synthetic_ytvis

quickstart: setup data

clean-venv:
	rm -rf $(VENV)
