"""The quickstart example runs as a newcomer would paste it."""

import runpy

from conftest import EXAMPLES


def test_quickstart_runs(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "built-in pendulum: total cost" in out and "success True" in out
    assert "numpy pendulum: total cost" in out
