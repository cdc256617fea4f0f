"""Libraries' console messages kept off the user's console."""

import os
import subprocess
import sys

import pytest

CHILD = """
import os
from stgcn_rt.quiet import native_stderr_hidden
os.write(2, b"before\\n")
with native_stderr_hidden():
    os.write(2, b"native log line\\n")
os.write(2, b"after\\n")
"""


@pytest.mark.parametrize(("debug", "expected"), [(None, "before\nafter\n"), ("1", "before\nnative log line\nafter\n")])
def test_native_writes_to_stderr_are_hidden_unless_debugging(debug, expected):
    env = {k: v for k, v in os.environ.items() if k != "STGCN_RT_DEBUG"}
    if debug:
        env["STGCN_RT_DEBUG"] = debug
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    assert done.stderr == expected
