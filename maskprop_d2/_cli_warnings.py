"""Known third-party warnings that the project's command-line programs do not show.

detectron2 v0.6 and fvcore were written for an older torch. On the current one they emit
deprecation warnings that say nothing about the user's run:

* "`torch.jit.script` is deprecated": fvcore's focal loss scripts two functions when detectron2
  imports it;
* "torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument":
  detectron2's anchor generator, on the first forward;
* "`torch.cuda.amp.autocast(args...)` / `torch.cuda.amp.GradScaler(args...)` is deprecated":
  detectron2's AMP trainer (``SOLVER.AMP.ENABLED`` on a GPU).

The entry points (``train_net.py``, ``demo/demo.py``, ``python -m maskprop_d2.data.synthetic``,
``python -m maskprop_d2.evaluation``) ignore exactly these: by category, message and the module
the warning is attributed to. The library filters nothing for the code that imports it: the
package calls :func:`quiet_known_warnings` only when the process was started as
``python -m maskprop_d2.<module>``. Warning options given by the user (``python -W ...``,
``PYTHONWARNINGS``) win: with any of them set, nothing is filtered.
"""

import sys
import warnings

# (category, message regex, regex of the module the warning is attributed to)
KNOWN_THIRD_PARTY_WARNINGS = (
    (FutureWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit\._script"),
    (UserWarning, r"torch\.meshgrid: in an upcoming release", r"torch\.functional"),
    (
        FutureWarning,
        r"`torch\.cuda\.amp\.(autocast|GradScaler)\(args\.\.\.\)` is deprecated",
        r"detectron2\.engine\.train_loop",
    ),
)


def quiet_known_warnings():
    """Ignore the known third-party warnings in this process (entry points only).

    Returns False, and filters nothing, when the user gave warning options.
    """
    if sys.warnoptions:
        return False
    for category, message, module in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    return True


def module_run_as_main(argv=None):
    """The module named by ``python [options] -m MODULE ...`` that started this process, or None."""
    argv = list(getattr(sys, "orig_argv", []) if argv is None else argv)[1:]
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("-m"):
            return arg[2:]
        if arg in ("-W", "-X"):  # options that take a separate value
            i += 2
            continue
        if not arg.startswith("-") or arg in ("-", "-c") or arg.startswith("-c"):
            return None  # a script, stdin or -c: not -m
        i += 1
    return None


def started_as_cli():
    """True when this process runs one of the package's modules (``python -m maskprop_d2.X``)."""
    module = module_run_as_main()
    return module is not None and (module == "maskprop_d2" or module.startswith("maskprop_d2."))
