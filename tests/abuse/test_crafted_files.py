"""Weight and config files that would run code (each would create a marker file if it ran):
refused with an error naming the file; model-zoo style ``.pkl`` weights keep loading; inference
refuses weights that leave parameters uninitialised, fine-tuning accepts them."""
import builtins
import collections
import pickle

import numpy as np
import pytest
import torch

from maskprop_d2.checkpoint import (
    AtomicCheckpointer,
    IncompleteWeightsError,
    SafeCheckpointer,
    load_inference_weights,
)
from maskprop_d2.config import get_maskprop_cfg
from maskprop_d2.utils.safe_load import ConfigFileError, WeightFileError, load_pickled_weights
from tests.helpers import TINY_CONFIG, load_script, repo_path, save_random_checkpoint
from tests.video_helpers import write_video

MASKTRACK_CONFIG = repo_path("configs", "synthetic", "masktrack_tiny.yaml")


class _Touch:
    """Unpickling this calls ``open(path, "w")``: the marker file appears if the code runs."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _evil_pickle(path, marker, protocol):
    with open(path, "wb") as f:
        pickle.dump({"model": {"w": _Touch(marker)}, "__author__": "x"}, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_crafted_pkl_is_refused_and_runs_nothing(tmp_path, tiny_model, protocol):
    pkl, marker = tmp_path / "evil.pkl", tmp_path / "PWNED"
    _evil_pickle(pkl, marker, protocol)
    with pytest.raises(WeightFileError) as e:
        SafeCheckpointer(tiny_model[1]).load(str(pkl))
    assert str(pkl) in str(e.value) and "open" in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".pyth"])
def test_crafted_pth_is_refused_and_runs_nothing(tmp_path, tiny_model, suffix):
    pth, marker = tmp_path / ("evil" + suffix), tmp_path / "PWNED"
    torch.save({"model": {"w": _Touch(marker)}, "model_state": {"w": _Touch(marker)}}, str(pth))
    with pytest.raises(WeightFileError) as e:
        SafeCheckpointer(tiny_model[1]).load(str(pth))
    assert str(pth) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("garbage", [
    b"", b"\x80\x05K", b"not a pickle at all", b"\x80\x02]q\x00.",
    pickle.dumps({"model": {"w": "a string"}, "__author__": "x"}, protocol=2),
])
def test_malformed_pkl_is_one_line_error(tmp_path, tiny_model, garbage):
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(garbage)
    with pytest.raises(WeightFileError) as e:
        SafeCheckpointer(tiny_model[1]).load(str(pkl))
    assert str(pkl) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_model_zoo_style_pkl_loads(tmp_path, tiny_model_copy, protocol):
    """detectron2's model zoo format: {"model": {name: ndarray}, "__author__": ...}."""
    _, model = tiny_model_copy
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    state = {k: (rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f" else v)
             for k, v in state.items()}
    pkl = tmp_path / "zoo.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"model": collections.OrderedDict(state), "__author__": "zoo",
                     "extra": [1, 2.5, "s", b"b", (3, None, True)]}, f, protocol=protocol)
    load_inference_weights(model, str(pkl))  # complete: no error
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k], err_msg=k)
    data = load_pickled_weights(str(pkl))
    assert data["extra"] == [1, 2.5, "s", b"b", (3, None, True)]


def test_crafted_yaml_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'_BASE_: "{TINY_CONFIG}"\nMODEL:\n  WEIGHTS: !!python/object/apply:'
                    f'builtins.open ["{marker}", "w"]\n')
    with pytest.raises(ConfigFileError) as e:
        get_maskprop_cfg(str(evil))
    assert str(evil) in str(e.value) and "line 3" in str(e.value), e.value
    assert "\n" not in str(e.value)
    assert not marker.exists()
    # in a _BASE_ file: the message names the base
    child = tmp_path / "child.yaml"
    child.write_text(f'_BASE_: "{evil}"\n')
    with pytest.raises(ConfigFileError, match="evil.yaml"):
        get_maskprop_cfg(str(child))
    assert not marker.exists()


def test_demo_refuses_crafted_config_and_weights(tmp_path, tiny_weights, capsys):
    demo = load_script("maskprop_demo", "demo", "demo.py")
    marker = tmp_path / "PWNED"
    evil_cfg = tmp_path / "evil.yaml"
    evil_cfg.write_text(f'_BASE_: "{TINY_CONFIG}"\nSEED: !!python/object/apply:builtins.open '
                        f'["{marker}", "w"]\n')
    src = tmp_path / "in.mp4"
    write_video(src, n=2)
    out = tmp_path / "out.mp4"
    rc = demo.main(["--config-file", str(evil_cfg), "--video-input", str(src), "--output",
                    str(out), "--opts", "MODEL.WEIGHTS", tiny_weights])
    err = capsys.readouterr().err
    assert rc == 2 and str(evil_cfg) in err and "Python tags" in err, err
    evil_pkl = tmp_path / "evil.pkl"
    _evil_pickle(evil_pkl, marker, 2)
    rc = demo.main(["--config-file", TINY_CONFIG, "--video-input", str(src), "--output", str(out),
                    "--opts", "MODEL.WEIGHTS", str(evil_pkl)])
    err = capsys.readouterr().err
    assert rc == 2 and str(evil_pkl) in err and "refusing to unpickle" in err, err
    assert not marker.exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pkl", "evil.yaml", "in.mp4"]


def test_inference_refuses_foreign_weights(tmp_path, tiny_model_copy):
    _, model = tiny_model_copy
    tv = tmp_path / "resnet18.pth"  # a torchvision-like state dict: shares no name
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(1000)}, str(tv))
    with pytest.raises(IncompleteWeightsError) as e:
        load_inference_weights(model, str(tv), TINY_CONFIG)
    msg = str(e.value)
    assert str(tv) in msg and "shares no parameter name" in msg and "backbone.*, " in msg
    assert "\n" not in msg
    with pytest.raises(IncompleteWeightsError, match="MODEL.WEIGHTS is empty"):
        load_inference_weights(model, "")


def test_masktrack_config_refuses_maskprop_weights_but_finetunes_from_them(tmp_path,
                                                                           tiny_weights):
    from detectron2.modeling import build_model

    cfg = get_maskprop_cfg(MASKTRACK_CONFIG, ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    with pytest.raises(IncompleteWeightsError) as e:
        load_inference_weights(model, tiny_weights, MASKTRACK_CONFIG)
    msg = str(e.value)
    assert "roi_heads.track_head.*" in msg and "maskprop_tiny.yaml" in msg, msg
    assert "backbone" not in msg.split("uninitialised")[0].split("(")[-1]
    # training from the same partial weights (detectron2's fine-tuning) loads them
    before = model.roi_heads.track_head.state_dict()
    ck = AtomicCheckpointer(model, str(tmp_path / "out"))
    ck.resume_or_load(tiny_weights, resume=False)
    after = model.roi_heads.track_head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # kept its initialisation
    # the MaskTrack model's own checkpoint is complete
    full = save_random_checkpoint(MASKTRACK_CONFIG, tmp_path / "mt.pth")
    load_inference_weights(model, full, MASKTRACK_CONFIG)
