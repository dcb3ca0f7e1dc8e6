"""pcw_keras.io: atomic, durable writes (the file and its folder are synced before and after the rename)."""
import os

import pytest

from pcw_keras import io

pytestmark = pytest.mark.jax  # backend-free: runs in the JAX run too


def test_write_syncs_the_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "sub" / "results.json"
    io.write_text_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "rename", "fsync"]
    assert events[0][1] != str(target) and events[1][1] == str(target)  # the data reached the disk under a temporary name
    assert events[2][1] == str(target.parent)  # then the rename itself
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            with open(tmp, "w") as handle:
                handle.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_stale_temporaries_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    kept = tmp_path / "last.keras"
    kept.write_text("model")
    (tmp_path / ".last.keras.ab12.tmp.keras").write_text("half")
    (tmp_path / ".hidden").write_text("user's")
    assert io.remove_stale_temporaries(tmp_path) == [".last.keras.ab12.tmp.keras"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.keras"]


def test_a_figure_is_saved_atomically_in_its_suffixs_format_and_closed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = tmp_path / "curves.png"
    target.write_text("old")
    figure, axes = plt.subplots(figsize=(2, 1), dpi=50)
    axes.plot([0, 1], [1, 0])
    io.save_figure(figure, target, dpi=100)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not plt.fignum_exists(figure.number)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]

    failing, _ = plt.subplots()
    with pytest.raises(ValueError):
        io.save_figure(failing, tmp_path / "curves.png", format="nope")  # savefig fails: the old file stays
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["curves.png"]
    assert not plt.fignum_exists(failing.number)
