"""Packaging for pcw_keras (metadata lives here; pyproject.toml only names the build backend)."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

setup(
    name="pcw_keras",
    version="0.1.0",
    description=(
        "Measure, remove and exploit the absolute position that CNNs encode in the "
        "order of their channels (Keras 3 / TensorFlow)."
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
    install_requires=[
        # tensorflow-cpu satisfies this on CPU-only machines: see README.
        "tensorflow>=2.16,<2.22; platform_machine != 'x86_64' or sys_platform != 'linux'",
        "tensorflow-cpu>=2.16,<2.22; platform_machine == 'x86_64' and sys_platform == 'linux'",
        "keras>=3.5,<4",
        "tensorflow-datasets>=4.9",
        "numpy>=1.26",
        "click>=8.1",
        "pyyaml>=6.0",
        "matplotlib>=3.7",
        "tensorboard>=2.16",
    ],
    extras_require={
        "test": ["pytest>=8", "ai-edge-litert>=1.2"],
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
