"""Test-wide settings and the fixtures the whole session shares.

* ``repo_root``: the repository root (from this file's location, not the working directory);
* ``synthetic_dataset``: one small synthetic YouTube-VIS dataset (``SYNTHETIC``), generated once;
  ``synthetic_dataset_factory(**params)`` for a test that needs other parameters (each parameter
  set is generated once per session too);
* ``tiny_model``: the tiny model of ``configs/synthetic/maskprop_tiny.yaml`` on the CPU (random
  init, torch seed 0, eval mode); ``tiny_model_copy`` gives a test its own copy to train or
  change, ``tiny_weights`` a checkpoint file of its weights.

The shared dataset and model are read-only: a test that writes files works in its own
``tmp_path``, and a test that trains the model, changes its mode or its config takes
``tiny_model_copy``. The session checks at the end that ``tiny_model`` was left unchanged.
"""

import copy
import pathlib

import pytest
import torch

from tests.helpers import REPO_ROOT, tiny_cfg

# The tests run tiny models where thread start-up costs more than it saves, and a busy 2-core
# machine makes oversubscribed intra-op threads 10x slower: one thread is faster and steadier.
torch.set_num_threads(1)

# The shared dataset: 3 train + 3 val videos of 6 frames, 96x64 (W x H), up to 3 objects a video.
# With this seed no val video holds two objects of one category, so the oracle's AR1 is 100.
SYNTHETIC = dict(num_train=3, num_val=3, length=6, height=64, width=96, max_objects=3, seed=5)


@pytest.fixture(scope="session")
def repo_root():
    """The repository root as a ``pathlib.Path``."""
    return pathlib.Path(REPO_ROOT)


@pytest.fixture(scope="session")
def synthetic_dataset_factory(tmp_path_factory):
    """``make(**params)``: the root (``pathlib.Path``) of a synthetic dataset generated with
    ``SYNTHETIC`` updated by ``params`` (every key of ``SYNTHETIC`` not in ``params`` applies:
    ``max_objects=None`` for the generator's default); generated once per session for each
    parameter set."""
    from maskprop_d2.data.synthetic import generate_synthetic_dataset

    made = {}

    def make(**params):
        params = {**SYNTHETIC, **params}
        key = tuple(sorted(params.items()))
        if key not in made:
            out = tmp_path_factory.mktemp("synthetic") / "ds"
            made[key] = pathlib.Path(generate_synthetic_dataset(str(out), **params))
        return made[key]

    return make


@pytest.fixture(scope="session")
def synthetic_dataset(synthetic_dataset_factory):
    """Root of the shared synthetic dataset (``SYNTHETIC``): train.json, valid.json and the
    frames under train/ and valid/. Read-only."""
    return synthetic_dataset_factory()


def _fingerprint(model):
    return [float(t.double().sum()) for t in model.state_dict().values()]


@pytest.fixture(scope="session")
def tiny_model():
    """``(cfg, model)``: the tiny config on the CPU (frozen cfg) and its model, random init with
    torch seed 0, in eval mode. Shared by the session: use ``tiny_model_copy`` to change it."""
    from detectron2.modeling import build_model

    cfg = tiny_cfg()
    cfg.freeze()
    torch.manual_seed(0)
    model = build_model(cfg)
    model.eval()
    before = _fingerprint(model)
    yield cfg, model
    assert not model.training and _fingerprint(model) == before, (
        "a test changed the shared tiny_model: take tiny_model_copy instead"
    )


@pytest.fixture
def tiny_model_copy(tiny_model):
    """``(cfg, model)``: this test's own copy of ``tiny_model`` (same weights, eval mode, a
    config it may change)."""
    cfg, model = tiny_model
    cfg = cfg.clone()
    cfg.defrost()
    return cfg, copy.deepcopy(model)


@pytest.fixture(scope="session")
def tiny_weights(tiny_model, tmp_path_factory):
    """Path (str) of a checkpoint ``{"model": state_dict}`` of ``tiny_model``'s weights, for
    ``MODEL.WEIGHTS``."""
    path = tmp_path_factory.mktemp("tiny_weights") / "model.pth"
    torch.save({"model": tiny_model[1].state_dict()}, str(path))
    return str(path)
