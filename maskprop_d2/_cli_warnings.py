"""Known third-party warnings that the project's command-line programs do not show.

detectron2 v0.6 and fvcore were written for an older torch. On the current one they emit
deprecation warnings that say nothing about the user's run:

* "`torch.jit.script` is deprecated": fvcore's focal loss scripts two functions when detectron2
  imports it;
* "torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument":
  detectron2's anchor generator, on the first forward;
* "`torch.cuda.amp.autocast(args...)` / `torch.cuda.amp.GradScaler(args...)` is deprecated":
  detectron2's AMP trainer (``SOLVER.AMP.ENABLED`` on a GPU).

The programs that import detectron2 (``train_net.py``, ``demo/demo.py``) call
:func:`quiet_known_warnings` first, before detectron2 is imported (importing ``maskprop_d2``
imports neither torch nor detectron2), and so ignore exactly these: by category, message and the
module the warning is attributed to. The package's own command-line modules (``python -m
maskprop_d2.evaluation``, ``python -m maskprop_d2.data.synthetic``) import no torch at all. The
library filters nothing for the code that imports it. Warning options given by the user
(``python -W ...``, ``PYTHONWARNINGS``) win: with any of them set, nothing is filtered.
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
