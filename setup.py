"""visiongates: a timm model zoo of gated and attention-gated vision architectures."""

from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name: str) -> list[str]:
    lines = Path(__file__).with_name("requirements").joinpath(name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="visiongates",
    version="0.1.0",
    description="Gated and attention-gated vision backbones for timm, mmdetection and mmsegmentation",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    # visiongates_runtime (runtime/, torch-free, also pip-installable on its own) comes along: one image decoder
    packages=[*find_packages(include=["visiongates", "visiongates.*"]), "visiongates_runtime"],
    package_dir={"visiongates_runtime": "runtime/visiongates_runtime"},
    entry_points={"console_scripts": ["visiongates-infer = visiongates_runtime.cli:entry"]},
    python_requires=">=3.10",
    # The core needs no mm* package and builds nothing; `.[mm]` adds mmdet / mmseg (after mmcv with ops: make setup-mm).
    install_requires=["torch>=2.4", "torchvision>=0.19", *read_requirements("core.txt")],
    extras_require={"mm": read_requirements("mm.txt"), "dev": read_requirements("dev.txt")},
    include_package_data=True,
    package_data={"visiongates.ops.bigla.cuda": ["README.md", "csrc/*.h", "csrc/*.cuh", "csrc/*.cu", "csrc/*.cpp"]},
    license="Apache-2.0",
)
