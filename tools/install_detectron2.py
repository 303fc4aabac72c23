#!/usr/bin/env python
"""Make ``import detectron2`` work in the current Python environment.

1. If an importable detectron2 >= 0.6 is already installed (for example a user's own source
   build with its compiled ops), it is used as is and nothing is installed.
   Its ``model_zoo`` needs ``pkg_resources``, which setuptools >= 82 no longer ships: if that
   import fails, ``setuptools<81`` is installed next to it (and written to the constraints).
2. Otherwise the ``pb1-detectron2==0.6`` source distribution is downloaded from PyPI, checked
   against a known sha256, and installed under the package name ``detectron2`` **without** the
   C++/CUDA ops (the sdist lacks their sources). A stand-in ``detectron2/_C.py`` answers
   detectron2's environment report and raises a clear error for every op. MaskProp needs none of
   those ops: ROIAlign/NMS come from torchvision, deformable convolution from
   ``torchvision.ops.deform_conv2d``.
   Before installing, a small compatibility patch for numpy >= 2, Pillow >= 10 and setuptools >= 82
   is applied: ``tools/detectron2_v0.6_patch.json`` lists every changed line (old -> new), and a
   line that does not read exactly as listed stops the install. The verified sdist and a record of
   the install are kept in ``<prefix>/share/maskprop-d2/detectron2-v0.6/`` so that the installed
   sources can be checked against it (tests/project/test_detectron2_install.py). A registry
   install made with another patch (or none) is replaced.

Run it with the interpreter of the target environment:
``.venv/bin/python tools/install_detectron2.py``.
Exits non-zero with a message naming the failing step; a failed run leaves no partial install.
"""

import argparse
import hashlib
import importlib
import importlib.util
import json
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

# Run-time dependencies of detectron2 v0.6 from its setup.py, without its black==21.4b2 pin (a
# formatting tool that breaks with current click) and without the caffe2-only future/pydot. No
# ceilings on numpy/Pillow/setuptools: the compatibility patch makes v0.6 run on current ones.
REGISTRY_PATH_REQUIREMENTS = [
    "Pillow>=7.1",
    "matplotlib",
    "opencv-python",  # v0.6 leaves it to the user; its visualizer and the project need it
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

HERE = os.path.dirname(os.path.abspath(__file__))
PATCH_FILE = os.path.join(HERE, "detectron2_v0.6_patch.json")
# A user's own detectron2 whose model_zoo imports pkg_resources: the setuptools that still has it
# without a warning on import.
PKG_RESOURCES_SETUPTOOLS = "setuptools<81"


def record_dir(prefix=None):
    """Where the verified sdist and the install record are kept (inside the environment)."""
    return os.path.join(prefix or sys.prefix, "share", "maskprop-d2", "detectron2-v0.6")


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


def write_constraints(path, lines):
    """Constraints that keep this detectron2 working when more packages are installed."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# written by tools/install_detectron2.py\n" + "".join(x + "\n" for x in lines))
    os.replace(tmp, path)
    log("wrote {} ({})".format(path, ", ".join(lines) if lines else "no constraints needed"))


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


def load_patch(path=PATCH_FILE):
    """The compatibility patch: a list of {file, line, old, new, why} (one whole line each).

    Raises ValueError naming ``path`` if the file is not such a list for this sdist.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError("{}: cannot read the detectron2 patch: {}".format(path, e)) from e
    if not isinstance(data, dict) or data.get("sdist_sha256") != SDIST_SHA256:
        raise ValueError(
            "{}: 'sdist_sha256' must be {} (the sdist this patch was written for)".format(
                path, SDIST_SHA256
            )
        )
    entries = data.get("lines")
    if not isinstance(entries, list) or not entries:
        raise ValueError("{}: 'lines' must be a non-empty list".format(path))
    seen = set()
    for k, e in enumerate(entries):
        where = "{}: lines[{}]".format(path, k)
        if not isinstance(e, dict):
            raise ValueError(where + " is not an object")
        for key, typ in (("file", str), ("line", int), ("old", str), ("new", str), ("why", str)):
            if not isinstance(e.get(key), typ) or isinstance(e.get(key), bool):
                raise ValueError("{} needs '{}' ({})".format(where, key, typ.__name__))
        if e["line"] < 1 or not e["file"].startswith("detectron2/") or ".." in e["file"]:
            raise ValueError("{}: bad file/line {}:{}".format(where, e["file"], e["line"]))
        if "\n" in e["old"] + e["new"] or e["old"] == e["new"]:
            raise ValueError(where + ": 'old' and 'new' must be different single lines")
        if (e["file"], e["line"]) in seen:
            raise ValueError("{}: {}:{} listed twice".format(where, e["file"], e["line"]))
        seen.add((e["file"], e["line"]))
    return entries


def patch_by_file(entries):
    """{file: {line number: entry}}."""
    out = {}
    for e in entries:
        out.setdefault(e["file"], {})[e["line"]] = e
    return out


def apply_patch(root, entries):
    """Replace each listed line under ``root`` (the folder holding ``detectron2/``).

    Every line must read exactly ``old`` first: any difference stops with an error naming the
    file and line, and nothing is written (all files are checked before the first write).
    """
    patched = {}
    for rel, by_line in sorted(patch_by_file(entries).items()):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            raise ValueError("patch: {} is missing from the sdist".format(rel))
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        for n, e in sorted(by_line.items()):
            found = lines[n - 1] if n <= len(lines) else None
            if found != e["old"]:
                raise ValueError(
                    "patch: {} line {} reads {!r}, expected {!r}: this is not the sdist the "
                    "patch was written for".format(rel, n, found, e["old"])
                )
            lines[n - 1] = e["new"]
        patched[path] = "\n".join(lines)
    for path, text in patched.items():
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return len(entries)


def build_source_tree(sdist, workdir, entries):
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
    try:
        n = apply_patch(tree, entries)
    except ValueError as e:
        fail("{} ({})".format(e, PATCH_FILE))
    log("applied the compatibility patch: {} lines ({})".format(n, os.path.basename(PATCH_FILE)))
    with open(os.path.join(tree, "detectron2", "_C.py"), "w") as f:
        f.write(STAND_IN_C)
    with open(os.path.join(tree, "setup.py"), "w") as f:
        f.write(SETUP_PY)
    log("prepared source tree (no C++ ops, stand-in detectron2._C, model-zoo configs)")
    return tree


def verify():
    # pkg_resources is blocked: the patched model_zoo must not need it.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pkg_resources"] = None
        import detectron2, detectron2.layers, detectron2.modeling, detectron2.data.transforms
        import detectron2.evaluation, detectron2.utils.visualizer
        from detectron2 import model_zoo
        from detectron2.structures.masks import polygons_to_bitmask
        from detectron2.utils.collect_env import collect_env_info
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
        m = polygons_to_bitmask([[1.0, 1.0, 8.0, 1.0, 8.0, 8.0]], 10, 10)
        assert m.dtype == bool and m.any()
        collect_env_info()
        print(detectron2.__version__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        fail("installed detectron2 does not import cleanly:\n" + out.stderr[-3000:])
    log("detectron2 {} imports, model-zoo configs found".format(out.stdout.strip()))


def installed_package_dir():
    importlib.invalidate_caches()
    spec = importlib.util.find_spec("detectron2")
    return os.path.dirname(os.path.realpath(spec.origin))


def read_record():
    """The record of the last registry install in this environment, or None."""
    path = os.path.join(record_dir(), "install.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_record(sdist):
    """Keep the verified sdist and what was installed from it, for later checks."""
    folder = record_dir()
    os.makedirs(folder, exist_ok=True)
    kept = os.path.join(folder, SDIST_NAME)
    shutil.copyfile(sdist, kept + ".tmp")
    os.replace(kept + ".tmp", kept)
    record = {
        "sdist": kept,
        "sdist_sha256": SDIST_SHA256,
        "patch_file": PATCH_FILE,
        "patch_sha256": sha256_of(PATCH_FILE),
        "package_dir": installed_package_dir(),
    }
    path = os.path.join(folder, "install.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)
    log("kept the verified sdist and the install record in " + folder)


def registry_install_outdated():
    """Why the registry install in this environment must be redone, or None if it is current."""
    record = read_record()
    if record is None:
        return "no install record (installed without the compatibility patch)"
    if record.get("patch_sha256") != sha256_of(PATCH_FILE):
        return "installed with another version of the compatibility patch"
    if record.get("package_dir") != installed_package_dir():
        return "the install record describes another detectron2 folder"
    if not os.path.isfile(record.get("sdist", "")):
        return "the kept sdist is missing"
    return None


def own_detectron2_constraints():
    """A user's own detectron2: make its model_zoo importable; return the constraints it needs."""
    code = "import detectron2.model_zoo"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode == 0:
        return []
    if "No module named 'pkg_resources'" not in out.stderr:
        log(
            "warning: `import detectron2.model_zoo` fails (MaskProp itself does not need it):\n"
            + out.stderr[-2000:]
        )
        return []
    log(
        "this detectron2's model_zoo imports pkg_resources, which setuptools >= 82 no longer "
        "ships: installing {} next to it".format(PKG_RESOURCES_SETUPTOOLS)
    )
    pip([PKG_RESOURCES_SETUPTOOLS])
    return [PKG_RESOURCES_SETUPTOOLS]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", help="use this local pb1-detectron2-0.6.tar.gz (still verified)")
    parser.add_argument("--force", action="store_true", help="reinstall even if detectron2 imports")
    parser.add_argument(
        "--constraints-out",
        help="write pip constraints that keep this detectron2 working to this file",
    )
    args = parser.parse_args()

    try:
        entries = load_patch()
    except ValueError as e:
        fail(str(e))
    constraints = []
    found = None if args.force else existing_detectron2()
    if not found:
        install(args.sdist, entries)
    elif is_registry_install():
        why = registry_install_outdated()
        if why:
            log("detectron2 registry install found, {}: reinstalling".format(why))
            install(args.sdist, entries)
        else:
            log("detectron2 registry install is current: " + found)
    else:
        log("using the detectron2 already installed: " + found)
        constraints = own_detectron2_constraints()
    if args.constraints_out:
        write_constraints(args.constraints_out, constraints)


def install(local_sdist, entries):
    kept = os.path.join(record_dir(), SDIST_NAME)
    if local_sdist is None and os.path.isfile(kept) and sha256_of(kept) == SDIST_SHA256:
        local_sdist = kept  # the copy kept by an earlier install (verified again below)
    with tempfile.TemporaryDirectory(prefix="d2-install-") as workdir:
        sdist = fetch_sdist(workdir, local_sdist)
        tree = build_source_tree(sdist, workdir, entries)
        log("installing detectron2 run-time dependencies")
        pip(REGISTRY_PATH_REQUIREMENTS)
        # --no-deps: the dependencies were installed above, without v0.6's black pin.
        pip(["--no-deps", "--no-build-isolation", tree])
        verify()
        write_record(sdist)


if __name__ == "__main__":
    main()
