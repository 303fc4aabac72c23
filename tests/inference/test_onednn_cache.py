"""The inference entry points cap oneDNN's primitive cache (one entry per layer and batch size
otherwise fills it over a long video): the setting takes effect when made in the process before
its first convolution, and a user's own value wins."""

import os
import subprocess
import sys

import pytest
import torch

from maskprop_d2.inference import VideoInferenceAdapter
from maskprop_d2.utils.onednn import CACHE_ENV, STREAMING_CACHE_CAPACITY, limit_primitive_cache
from tests.video_helpers import tiny_video_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs one convolution twice after limit_primitive_cache(int(argv[1])); oneDNN's verbose log then
# says whether the second run found the first one's primitive in the cache.
_CHILD = """
import sys, torch
from maskprop_d2.utils.onednn import limit_primitive_cache
print("SET", limit_primitive_cache(int(sys.argv[1])), flush=True)
conv, x = torch.nn.Conv2d(8, 8, 3), torch.randn(2, 8, 16, 16)
with torch.no_grad():
    conv(x)
    conv(x)
"""


def _conv_cache_events(capacity, user_value=None):
    env = {k: v for k, v in os.environ.items() if k != CACHE_ENV}
    env.update(ONEDNN_VERBOSE="all", OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    if user_value is not None:
        env[CACHE_ENV] = str(user_value)
    cmd = [sys.executable, "-c", _CHILD, str(capacity)]
    run = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    events = [ln.split(",")[3] for ln in out.splitlines()
              if ln.startswith("onednn_verbose") and ",convolution," in ln
              and ",create:cache_" in ln]  # fmt: skip
    if not events:
        pytest.skip("this torch build logs no oneDNN convolution primitives")
    return out.splitlines()[0], events


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_capacity_set_in_process_takes_effect():
    said, events = _conv_cache_events(0)
    assert said == "SET True"
    assert events == ["create:cache_miss", "create:cache_miss"]  # nothing kept
    said, events = _conv_cache_events(STREAMING_CACHE_CAPACITY)
    assert events == ["create:cache_miss", "create:cache_hit"]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_a_users_capacity_wins():
    said, events = _conv_cache_events(0, user_value=1024)
    assert said == "SET False"
    assert events == ["create:cache_miss", "create:cache_hit"]


def test_limit_sets_only_an_unset_variable(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert limit_primitive_cache(7) is True
    assert os.environ[CACHE_ENV] == "7"
    assert limit_primitive_cache(9) is False
    assert os.environ[CACHE_ENV] == "7"
    with pytest.raises(ValueError, match="capacity"):
        limit_primitive_cache(-1)


def test_inference_entry_point_sets_the_cap(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    cfg, model = tiny_video_model()
    VideoInferenceAdapter.from_config(cfg, model)
    assert os.environ[CACHE_ENV] == str(STREAMING_CACHE_CAPACITY)
