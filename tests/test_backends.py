"""pcw_keras.backends: choosing the Keras backend without importing TensorFlow or JAX."""
import importlib.util
import os
import subprocess
import sys

import pytest

from pcw_keras import backends


@pytest.fixture
def installed(monkeypatch):
    """Pretend exactly the given backend packages are installed (find_spec patched)."""
    real_find_spec = importlib.util.find_spec

    def set_installed(*names):
        def find_spec(name, *args, **kwargs):
            if name in ("tensorflow", "jax"):
                return object() if name in names else None
            return real_find_spec(name, *args, **kwargs)

        monkeypatch.setattr(backends.importlib.util, "find_spec", find_spec)

    return set_installed


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)


def gpu(monkeypatch, present: bool) -> None:
    monkeypatch.setattr(backends, "gpu_present", lambda: present)


def test_choices():
    assert backends.BACKEND_CHOICES == ("auto", "tensorflow", "jax")
    for backend in ("tensorflow", "jax"):
        assert backends.CPU_TRAIN_IMAGES_PER_S[backend]["float32"] > 0


@pytest.mark.parametrize("name", ["tensorflow", "jax", "JAX", " tensorflow "])
def test_explicit_names(installed, monkeypatch, name):
    installed("tensorflow", "jax")
    monkeypatch.setenv("KERAS_BACKEND", "jax" if "tensorflow" in name else "tensorflow")  # explicit beats the env
    assert backends.resolve_backend(name) == name.strip().lower()


@pytest.mark.parametrize("bad", ["torch", "", "tf", None])
def test_bad_name_names_value_and_choices(bad):
    with pytest.raises(ValueError) as error:
        backends.resolve_backend(bad)
    assert repr(bad) in str(error.value)
    assert "auto, tensorflow, jax" in str(error.value)


def test_explicit_backend_not_installed(installed):
    installed("tensorflow")
    with pytest.raises(backends.BackendNotInstalledError, match="'jax'.*not installed"):
        backends.resolve_backend("jax")
    assert issubclass(backends.BackendNotInstalledError, ImportError)


def test_auto_respects_environment(installed, monkeypatch):
    installed("tensorflow", "jax")
    gpu(monkeypatch, True)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert backends.resolve_backend() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # any backend Keras knows: the user's choice
    assert backends.resolve_backend("auto") == "torch"


def test_auto_gpu_prefers_jax(installed, monkeypatch, no_env):
    gpu(monkeypatch, True)
    installed("tensorflow", "jax")
    assert backends.resolve_backend() == "jax"
    installed("jax")
    assert backends.resolve_backend() == "jax"
    installed("tensorflow")  # a GPU machine without JAX
    assert backends.resolve_backend() == "tensorflow"


def test_auto_cpu_picks_measured_faster(installed, monkeypatch, no_env):
    gpu(monkeypatch, False)
    installed("tensorflow", "jax")
    measured = backends.CPU_TRAIN_IMAGES_PER_S
    faster = max(("tensorflow", "jax"), key=lambda b: measured[b]["float32"])
    assert backends.resolve_backend() == faster
    monkeypatch.setattr(backends, "CPU_TRAIN_IMAGES_PER_S", {
        "tensorflow": {"float32": 1.0}, "jax": {"float32": 2.0}})
    assert backends.resolve_backend() == "jax"
    monkeypatch.setattr(backends, "CPU_TRAIN_IMAGES_PER_S", {
        "tensorflow": {"float32": 2.0}, "jax": {"float32": 1.0}})
    assert backends.resolve_backend() == "tensorflow"


@pytest.mark.parametrize("only", ["tensorflow", "jax"])
def test_auto_single_installed(installed, monkeypatch, no_env, only):
    gpu(monkeypatch, False)
    installed(only)
    assert backends.resolve_backend() == only


def test_auto_nothing_installed(installed, monkeypatch, no_env):
    gpu(monkeypatch, False)
    installed()
    with pytest.raises(backends.BackendNotInstalledError, match="no Keras backend"):
        backends.resolve_backend()


def test_gpu_present_checks_driver_and_smi(monkeypatch):
    monkeypatch.setattr(backends.os.path, "exists", lambda path: False)
    monkeypatch.setattr(backends.shutil, "which", lambda name: None)
    assert backends.gpu_present() is False
    monkeypatch.setattr(backends.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert backends.gpu_present() is True
    monkeypatch.setattr(backends.shutil, "which", lambda name: None)
    monkeypatch.setattr(backends.os.path, "exists", lambda path: path == "/proc/driver/nvidia/version")
    assert backends.gpu_present() is True


def test_apply_backend_with_keras_imported(installed, monkeypatch, no_env):
    """The test session has Keras imported (conftest): the same backend applies, another one raises."""
    installed("tensorflow", "jax")
    current = backends._imported_keras_backend()
    assert current is not None
    assert backends.apply_backend("auto") == current  # auto keeps the backend Keras runs on
    assert os.environ["KERAS_BACKEND"] == current
    if current in ("tensorflow", "jax"):
        assert backends.apply_backend(current) == current
        other = "jax" if current == "tensorflow" else "tensorflow"
        with pytest.raises(RuntimeError, match="already imported"):
            backends.apply_backend(other)


def test_apply_backend_fresh_process_imports_nothing():
    """In a fresh process: sets KERAS_BACKEND and imports neither Keras, TensorFlow nor JAX."""
    code = (
        "import os, sys\n"
        "os.environ.pop('KERAS_BACKEND', None)\n"
        "from pcw_keras import backends\n"
        "backends.gpu_present = lambda: False\n"
        "installed = [b for b in ('tensorflow', 'jax') if backends.backend_installed(b)]\n"
        "chosen = backends.apply_backend('auto') if installed else None\n"
        "assert chosen is None or os.environ['KERAS_BACKEND'] == chosen\n"
        "loaded = [m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print(chosen)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.jax
def test_a_submodule_imported_first_imports_and_registers_the_whole_package():
    """``from pcw_keras.layers import ...`` as a program's first line imports Keras from inside the package: the
    registration waits for that import to end instead of failing on half-imported modules, and registers what
    ``import pcw_keras`` registers."""

    def registered_after(first: str) -> str:
        code = (f"{first}\nimport keras\n"
                "print(sorted(name for name in keras.saving.get_custom_objects() if name.startswith('pcw_keras>')))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (first, result.stderr[-2000:])
        return result.stdout.strip().splitlines()[-1]

    documented = registered_after("import pcw_keras")
    assert documented.count("pcw_keras>") > 10
    for first in ("from pcw_keras.layers import AugShift", "import pcw_keras.models"):
        assert registered_after(first) == documented, first
