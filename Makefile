# Two commands do all set-up on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check
STAMP := $(VENV)/.maskprop-setup-done
# torch/torchvision pins: the releases available offline on this project's machines. Set
# TORCH_SPEC="" to keep whatever torch is already in the venv.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup test quickstart lint data train eval demo masktrack compare clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml tools/install_detectron2.py tools/detectron2_v0.6_patch.json Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) $(TORCH_SPEC)
	$(PY) tools/install_detectron2.py --constraints-out $(VENV)/detectron2-constraints.txt
	$(PIP) -c $(VENV)/detectron2-constraints.txt --no-build-isolation -e ".[test,lint]"
	$(PY) -W 'ignore:`torch.jit.script` is deprecated:FutureWarning' -c "import detectron2, maskprop_d2; print('maskprop_d2 ready, detectron2', detectron2.__version__)"
	touch $(STAMP)

test: setup
	$(PY) -m pytest tests -q

lint: setup
	$(PY) -m ruff check maskprop_d2 tests tools demo train_net.py

SYN_ROOT := datasets/synthetic_ytvis
TINY_CFG := configs/synthetic/maskprop_tiny.yaml
TINY_OUT := output/synthetic/maskprop_tiny
DEMO_VIDEO := $(SYN_ROOT)/valid/JPEGImages/valid_00000

data: setup
	$(PY) -m maskprop_d2.data.synthetic --out $(SYN_ROOT)

# Train the tiny model on CPU (resumes from the last checkpoint; skipped once model_final.pth
# exists), evaluate it on the synthetic val split, render a demo video of one val video.
train: data
	@if [ -f $(TINY_OUT)/model_final.pth ]; then \
	  echo "$(TINY_OUT)/model_final.pth exists: training skipped (delete it to retrain)"; \
	else \
	  $(PY) train_net.py --config-file $(TINY_CFG) --resume OUTPUT_DIR $(TINY_OUT) 'DATASETS.TEST' '()'; \
	fi

eval: train
	$(PY) train_net.py --config-file $(TINY_CFG) --eval-only \
	  MODEL.WEIGHTS $(TINY_OUT)/model_final.pth OUTPUT_DIR $(TINY_OUT)

demo: train
	$(PY) demo/demo.py --config-file $(TINY_CFG) --input $(DEMO_VIDEO) --fps 6 \
	  --output-scale 4 --output output/demo_synthetic_valid_00000.mp4 \
	  --json output/demo_synthetic_valid_00000.json \
	  --overwrite --opts MODEL.WEIGHTS $(TINY_OUT)/model_final.pth

quickstart: setup data train eval demo

# The paper's comparison (after the quickstart): MaskTrack R-CNN's tracking head trained on top of
# the frozen tiny model (~1 min), then every tracker on the same detections, standard, hard and
# occlusion synthetic val splits: benchmarks/trackers_synthetic.md.
MT_CFG := configs/synthetic/masktrack_tiny.yaml
MT_OUT := output/synthetic/masktrack_tiny
HARD_ROOT := datasets/synthetic_ytvis_hard
OCC_ROOT := datasets/synthetic_ytvis_occlusion

masktrack: train
	@if [ -f $(MT_OUT)/model_final.pth ]; then \
	  echo "$(MT_OUT)/model_final.pth exists: training skipped (delete it to retrain)"; \
	else \
	  $(PY) train_net.py --config-file $(MT_CFG) --resume OUTPUT_DIR $(MT_OUT) \
	    MODEL.WEIGHTS $(TINY_OUT)/model_final.pth 'DATASETS.TEST' '()'; \
	fi

compare: masktrack
	test -f $(HARD_ROOT)/valid.json || \
	  $(PY) -m maskprop_d2.data.synthetic --out $(HARD_ROOT) --num-train 1 --difficulty hard
	test -f $(OCC_ROOT)/valid.json || \
	  $(PY) -m maskprop_d2.data.synthetic --out $(OCC_ROOT) --num-train 1 --difficulty occlusion
	$(PY) tools/bench_trackers.py --weights $(MT_OUT)/model_final.pth \
	  --standard-root $(SYN_ROOT) --hard-root $(HARD_ROOT) --occlusion-root $(OCC_ROOT) \
	  --out benchmarks/trackers_synthetic.md

clean-venv:
	rm -rf $(VENV)
