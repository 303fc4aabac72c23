"""tools/run_detectron2_tests.py sorts detectron2's test failures into what the registry
install lacks on purpose (_C, optional packages, data/network) and the rest."""
from tests.helpers import load_script


def test_failures_are_classified():
    mod = load_script("run_detectron2_tests", "tools", "run_detectron2_tests.py")
    cases = {
        "RuntimeError: detectron2._C.box_iou_rotated is not available: ...": "needs _C",
        "AttributeError: '_OpNamespace' 'detectron2' object has no attribute 'nms_rotated'":
            "needs _C",
        "ModuleNotFoundError: No module named 'shapely'": "needs an optional package",
        "ImportError: cannot import name 'Caffe2Model' from 'detectron2.export' (...)":
            "needs an optional package",
        "socket.gaierror: [Errno -2] Name or service not known\nurlopen": "needs data or network",
        "FileNotFoundError: datasets/coco/annotations": "needs data or network",
        # import detectron2.export itself failing is a gap of the sources, not a missing option
        "ModuleNotFoundError: No module named 'caffe2'\nimport detectron2.export": "other",
        "TypeError: Population must be a sequence.  For dicts or sets, use sorted(d).": "other",
    }
    for text, want in cases.items():
        assert mod.classify(text) == want, (text, mod.classify(text))
    assert mod.first_error_line("x\nE   KeyError: 'precision'\nE  more") == "KeyError: 'precision'"
