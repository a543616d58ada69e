"""The README's Python example runs as pasted, and the type stubs match the module."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_readme_python_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "no ```python block in README.md"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.split("\n")
    # the example prints the final state (upright) and the cart-pole's success
    final = [float(v) for v in out[0].strip("[] ").split()]
    assert abs(final[0]) < 0.1, out
    assert out[1] == "True", out


def test_the_type_stubs_match_the_module():
    # mypy's stubtest imports the module and compares every name and signature with the stub
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mppi"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
