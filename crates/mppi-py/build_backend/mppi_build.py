"""PEP 517 build backend: maturin, plus a second copy of the native module for x86-64-v3.

The repository builds for x86-64-v3 (AVX2, FMA: `.cargo/config.toml`), but a wheel must run on
any x86-64 CPU. So the wheel carries the library twice: `mppi/_native` built by maturin for
baseline x86-64, and `mppi/_native_v3` built here with cargo for x86-64-v3 (same code, feature
`v3` only renames the module). `import mppi` asks the baseline module whether the CPU runs
x86-64-v3 and loads `_native_v3` if it does (`MPPI_CPU=baseline|v3` overrides). Both give the
same numbers: Rust never contracts `a*b + c` into an FMA, so wider vectors do not change
results (tests/test_dispatch.py checks it).

The baseline build uses its own target directory (`target/wheel-baseline`) so that its
different code-generation flags do not invalidate the repository's release build, which the
v3 copy shares.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import maturin
from maturin import (  # noqa: F401  (the hooks maturin implements unchanged)
    build_sdist,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_wheel,
)

HERE = Path(__file__).resolve().parent.parent
PACKAGE = HERE / "python" / "mppi"


def _target_dir():
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]).resolve()
    meta = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        cwd=HERE,
        check=True,
        stdout=subprocess.PIPE,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def _is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64")


def _build_v3(target):
    """Build the x86-64-v3 copy with cargo and put it in the package; its path."""
    env = dict(os.environ)
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    env["RUSTFLAGS"] = "-C target-cpu=x86-64-v3"
    env["CARGO_TARGET_DIR"] = str(target)
    # an extension module: leave the Python symbols to the interpreter that loads it
    env["PYO3_BUILD_EXTENSION_MODULE"] = "1"
    env["PYO3_PYTHON"] = sys.executable
    print("mppi: building the x86-64-v3 copy of the native module", file=sys.stderr)
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "mppi-py", "--features", "v3"],
        cwd=HERE,
        env=env,
        check=True,
        stdout=sys.stderr,
    )
    built = target / "release" / "libmppi_py.so"
    dest = PACKAGE / "_native_v3.abi3.so"
    shutil.copyfile(built, dest)
    # the repository's release profile keeps debug info for profiling; a wheel does not need it
    strip = shutil.which("strip")
    if strip:
        subprocess.run([strip, "--strip-unneeded", str(dest)], check=False)
    return dest


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    target = _target_dir()
    extra = None
    if _is_x86_64() and sys.platform.startswith("linux"):
        extra = _build_v3(target)
    saved = {k: os.environ.get(k) for k in ("RUSTFLAGS", "CARGO_TARGET_DIR")}
    try:
        if _is_x86_64():
            os.environ["RUSTFLAGS"] = "-C target-cpu=x86-64"
            os.environ["CARGO_TARGET_DIR"] = str(target / "wheel-baseline")
        return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if extra is not None:
            extra.unlink(missing_ok=True)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable install has the baseline module only (maturin's editable build)."""
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def prepare_metadata_for_build_editable(wheel_directory, config_settings=None):
    return maturin.prepare_metadata_for_build_editable(wheel_directory, config_settings)


def get_requires_for_build_editable(config_settings=None):
    return maturin.get_requires_for_build_editable(config_settings)
