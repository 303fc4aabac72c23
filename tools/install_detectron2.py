#!/usr/bin/env python
"""Make ``import detectron2`` work in the current Python environment.

1. If an importable detectron2 >= 0.6 is already installed (for example a user's own source
   build with its compiled ops), it is used as is and nothing is installed.
2. Otherwise the ``pb1-detectron2==0.6`` source distribution is downloaded from PyPI, checked
   against a known sha256, and installed under the package name ``detectron2`` **without** the
   C++/CUDA ops (the sdist lacks their sources). A stand-in ``detectron2/_C.py`` answers
   detectron2's environment report and raises a clear error for every op. MaskProp needs none of
   those ops: ROIAlign/NMS come from torchvision, deformable convolution from
   ``torchvision.ops.deform_conv2d``.

Run it with the interpreter of the target environment:
``.venv/bin/python tools/install_detectron2.py``.
Exits non-zero with a message naming the failing step; a failed run leaves no partial install.
"""

import argparse
import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import urllib.request

SDIST_NAME = "pb1-detectron2-0.6.tar.gz"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/60/26/"
    "48f5bbb7ee492696a21da23303daeecdfe3942c498a70d34108acf63b2bd/" + SDIST_NAME
)
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"

# Run-time dependencies of detectron2 v0.6 (its setup.py also pins black==21.4b2, which is only a
# formatting tool and breaks with current click: left out). numpy/Pillow/setuptools are capped
# because v0.6 uses np.bool/np.float, Image.LINEAR and pkg_resources.
# Ceilings of the registry path: also written as a pip constraints file (--constraints-out) so
# that installing maskprop-d2 afterwards cannot lift them.
REGISTRY_PATH_CEILINGS = [
    "numpy<1.24",
    "Pillow<10",
    "setuptools<81",
    "matplotlib<3.9",
    "opencv-python<4.9",
]
REGISTRY_PATH_REQUIREMENTS = REGISTRY_PATH_CEILINGS + [
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
]

STAND_IN_C = '''\
"""Stand-in for detectron2's compiled ops, written by maskprop-d2's tools/install_detectron2.py.

This detectron2 was installed from source without its C++/CUDA extension. The three functions
detectron2's environment report calls are answered; every op raises an error that names it.
MaskProp does not need any of them (torchvision provides ROIAlign, NMS and deform_conv2d).
"""


def get_compiler_version():
    return "not built (maskprop-d2 stand-in for detectron2._C)"


def get_cuda_version():
    return "not built"


def has_cuda():
    return False


class _MissingOp:
    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(
            "detectron2._C.{} is not available: this detectron2 was installed without its "
            "compiled C++/CUDA ops (maskprop-d2 registry install). MaskProp does not need this "
            "op; if your own code does, build detectron2 from source.".format(self._name)
        )

    def __repr__(self):
        return "<missing detectron2 op {}>".format(self._name)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _MissingOp(name)
'''

SETUP_PY = """\
from setuptools import find_packages, setup

setup(
    name="detectron2",
    version="0.6",
    description="detectron2 v0.6 Python sources (from pb1-detectron2==0.6) without compiled ops",
    packages=find_packages(include=["detectron2", "detectron2.*"]),
    package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},
    include_package_data=False,
    python_requires=">=3.6",
)
"""


def log(msg):
    print("[install_detectron2] " + msg, flush=True)


def fail(msg):
    print("[install_detectron2] ERROR: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


STAND_IN_MARK = "maskprop-d2 stand-in for detectron2._C"


def is_registry_install():
    """True if the importable detectron2 is the one this script installs (stand-in _C)."""
    try:
        spec = importlib.util.find_spec("detectron2")
    except Exception:
        return False
    if spec is None or not spec.origin:
        return False
    stand_in = os.path.join(os.path.dirname(spec.origin), "_C.py")
    if not os.path.isfile(stand_in):
        return False
    with open(stand_in) as f:
        return STAND_IN_MARK in f.read()


def write_constraints(path):
    """Constraints for installing more packages next to this detectron2 (empty if user-built)."""
    lines = REGISTRY_PATH_CEILINGS if is_registry_install() else []
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# written by tools/install_detectron2.py\n" + "".join(x + "\n" for x in lines))
    os.replace(tmp, path)
    log("wrote {} ({})".format(path, ", ".join(lines) if lines else "no ceilings: own detectron2"))


def existing_detectron2():
    """Version string of an importable detectron2 >= 0.6, else None."""
    try:
        mod = importlib.import_module("detectron2")
    except Exception:  # not installed, or broken
        return None
    version = getattr(mod, "__version__", "0")
    parts = []
    for p in version.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    if parts < [0, 6]:
        log("found detectron2 {} (< 0.6): it will be replaced".format(version))
        return None
    return "{} at {}".format(version, os.path.dirname(mod.__file__))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_sdist(workdir, local):
    path = os.path.join(workdir, SDIST_NAME)
    if local:
        log("using local sdist " + local)
        shutil.copyfile(local, path)
    else:
        log("downloading " + SDIST_URL)
        try:
            with urllib.request.urlopen(SDIST_URL, timeout=300) as r, open(path, "wb") as f:
                shutil.copyfileobj(r, f)
        except Exception as e:
            fail("download of {} failed: {}".format(SDIST_URL, e))
    digest = sha256_of(path)
    if digest != SDIST_SHA256:
        fail(
            "sha256 mismatch for {}: expected {}, got {}. Refusing to install.".format(
                SDIST_NAME, SDIST_SHA256, digest
            )
        )
    log("sha256 verified: " + digest)
    return path


def pip(args):
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args
    log("$ " + " ".join(cmd))
    rc = subprocess.call(cmd)
    if rc != 0:
        fail("pip failed (exit {}): {}".format(rc, " ".join(args)))


def build_source_tree(sdist, workdir):
    with tarfile.open(sdist) as tar:
        top = os.path.commonpath(tar.getnames())
        try:
            tar.extractall(workdir, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(workdir)
    src = os.path.join(workdir, top)
    tree = os.path.join(workdir, "detectron2-build")
    os.makedirs(tree)
    shutil.copytree(os.path.join(src, "detectron2"), os.path.join(tree, "detectron2"))
    shutil.rmtree(os.path.join(tree, "detectron2", "layers", "csrc"), ignore_errors=True)
    configs = os.path.join(tree, "detectron2", "model_zoo", "configs")
    if not os.path.isdir(configs):
        fail("the sdist has no detectron2/model_zoo/configs: unexpected archive layout")
    with open(os.path.join(tree, "detectron2", "_C.py"), "w") as f:
        f.write(STAND_IN_C)
    with open(os.path.join(tree, "setup.py"), "w") as f:
        f.write(SETUP_PY)
    log("prepared source tree (no C++ ops, stand-in detectron2._C, model-zoo configs)")
    return tree


def verify():
    code = textwrap.dedent(
        """
        import detectron2, detectron2.layers, detectron2.modeling
        from detectron2 import model_zoo
        from detectron2.utils.collect_env import collect_env_info
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
        collect_env_info()
        print(detectron2.__version__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        fail("installed detectron2 does not import cleanly:\n" + out.stderr[-3000:])
    log("detectron2 {} imports, model-zoo configs found".format(out.stdout.strip()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", help="use this local pb1-detectron2-0.6.tar.gz (still verified)")
    parser.add_argument("--force", action="store_true", help="reinstall even if detectron2 imports")
    parser.add_argument(
        "--constraints-out",
        help="write pip constraints that keep this detectron2 working (ceilings only on the "
        "registry path) to this file",
    )
    args = parser.parse_args()

    found = None if args.force else existing_detectron2()
    if found:
        log("using the detectron2 already installed: " + found)
    else:
        install(args.sdist)
    if args.constraints_out:
        write_constraints(args.constraints_out)


def install(local_sdist):
    with tempfile.TemporaryDirectory(prefix="d2-install-") as workdir:
        sdist = fetch_sdist(workdir, local_sdist)
        tree = build_source_tree(sdist, workdir)
        log("installing detectron2 run-time dependencies (numpy/Pillow/setuptools capped for v0.6)")
        pip(REGISTRY_PATH_REQUIREMENTS)
        # --no-deps: the dependencies were installed above, without v0.6's black pin.
        pip(["--no-deps", "--no-build-isolation", tree])
    verify()


if __name__ == "__main__":
    main()
