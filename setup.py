"""Packaging for pcw_keras (metadata lives here; pyproject.toml only names the build backend)."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

# What the TensorFlow installs add beyond TensorFlow: tfds sources and TensorBoard logs.
TENSORFLOW_TOOLS = ["tensorflow-datasets>=4.9", "tensorboard>=2.16"]

setup(
    name="pcw_keras",
    version="0.1.0",
    description=(
        "Measure, remove and exploit the absolute position that CNNs encode in the "
        "order of their channels (Keras 3: TensorFlow or JAX)."
    ),
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["pcw_keras", "pcw_keras.*"]),
    package_data={
        "pcw_keras": ["recipes/configs/*.yaml", "data/assets/*"],
    },
    include_package_data=True,
    # The core runs on any Keras backend; pick one with an extra (README, "Install"):
    #   [cpu]  TensorFlow without CUDA (tensorflow-cpu on Linux x86-64, where the full
    #          wheel would carry CUDA libraries for nothing);
    #   [gpu]  TensorFlow with the CUDA libraries from PyPI (Linux x86-64, NVIDIA GPUs);
    #   [jax]  JAX, no TensorFlow (pcw train/evaluate/demo; export needs TensorFlow).
    # [cpu] and [gpu] are exclusive: both write the same `tensorflow` package.
    install_requires=[
        "keras>=3.5,<4",
        "numpy>=1.26",
        "pillow>=10",
        "click>=8.1",
        "pyyaml>=6.0",
        "matplotlib>=3.7",
    ],
    extras_require={
        "cpu": [
            "tensorflow-cpu>=2.16,<2.22; platform_machine == 'x86_64' and sys_platform == 'linux'",
            "tensorflow>=2.16,<2.22; platform_machine != 'x86_64' or sys_platform != 'linux'",
            *TENSORFLOW_TOOLS,
        ],
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22", *TENSORFLOW_TOOLS],
        "jax": ["jax>=0.4.30"],
        "test": ["pytest>=8", "pytest-xdist>=3"],
        "edge": ["ai-edge-litert>=1.2"],
    },
    entry_points={"console_scripts": ["pcw=pcw_keras.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
