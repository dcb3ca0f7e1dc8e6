"""benchmarks/gpu_check.py --estimate: the per-step overhead taken from benchmarks/host_overhead.py's JSON."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_step_overhead_is_jax_pcw_trains_host_time_per_step_from_the_benchmarks_json(tmp_path):
    gpu_check = _gpu_check()
    path = tmp_path / "host_overhead.json"
    path.write_text(json.dumps({"backends": {"jax": {"pcw_train": {"host_ms_per_step": 1.75, "ms_per_step": 60.0}}}}))
    assert gpu_check.measured_step_overhead_ms(str(path)) == 1.75
    path.write_text(json.dumps({"backends": {"tensorflow": {}}}))
    with pytest.raises(ValueError, match="backends.jax.pcw_train.host_ms_per_step.*Missing: 'jax'"):
        gpu_check.measured_step_overhead_ms(str(path))


def test_the_committed_estimate_uses_the_committed_measurement():
    gpu_check = _gpu_check()
    estimate = json.loads((ROOT / "docs" / "bench" / "gpu_check_estimate_h100.json").read_text())
    source, _, key = estimate["step_overhead_from"].partition("#")
    assert key == ".".join(gpu_check.HOST_OVERHEAD_KEY)
    assert estimate["step_overhead_s"] == pytest.approx(gpu_check.measured_step_overhead_ms(str(ROOT / source)) / 1e3)
