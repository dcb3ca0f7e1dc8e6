"""Run ``pcw train ...`` and SIGKILL it at a chosen moment: ``python train_killed.py WHEN -- PCW_ARGS...``.

``WHEN`` is one of:

- ``none``: no kill;
- ``write:NAME:N``: inside the N-th atomic write of a file called NAME, after
  its bytes are on disk and before the rename commits it (``os.replace``);
- ``batch:N``: when the N-th training batch is drawn.

The kill hooks live here, in the test, not in the package.
"""
import os
import signal
import sys

when, args = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
kind, *spec = when.split(":")


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


if kind == "write":
    name, count = spec[0], int(spec[1])
    real_replace, seen = os.replace, [0]

    def replace(src, dst, *a, **k):
        if os.path.basename(os.fspath(dst)) == name:
            seen[0] += 1
            if seen[0] == count:
                die()
        return real_replace(src, dst, *a, **k)

    os.replace = replace
elif kind == "batch":
    from pcw_keras.data.batching import ImageBatches

    real_getitem, drawn = ImageBatches.__getitem__, [0]

    def getitem(self, step):
        if self.training:
            drawn[0] += 1
            if drawn[0] == int(spec[0]):
                die()
        return real_getitem(self, step)

    ImageBatches.__getitem__ = getitem

from pcw_keras.cli import main  # noqa: E402

sys.exit(main(args, prog_name="pcw", standalone_mode=True))
