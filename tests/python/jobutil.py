"""Helpers of the Python package's tests (tests/python/CMakeLists.txt): the torch check
that skips on a developer's machine and fails under CI, and running a job through
`tessera launch --program python3`."""

import json
import os
import subprocess
import sys
import tempfile

EXIT_SKIP = 77  # ctest SKIP_RETURN_CODE


def require_torch():
    """Imports torch, or ends the test: skipped (77) outside CI, failed under CI=true."""
    try:
        import torch  # noqa: F401
        import tessera  # noqa: F401
    except ImportError as e:
        what = "cannot import %s (%s): needs Debian's python3-torch and the built package (PYTHONPATH=build/python)" % (
            e.name, e)
        if os.environ.get("CI") == "true":
            print("missing under CI (a skip would leave the run silently green): " + what, file=sys.stderr)
            sys.exit(1)
        print("skipped: " + what, file=sys.stderr)
        sys.exit(EXIT_SKIP)


def source_dir():
    return os.environ.get("TESSERA_SOURCE_DIR", os.getcwd())


def tessera_bin():
    return os.environ.get("TESSERA_BIN", os.path.join(source_dir(), "build/launch/tessera"))


def launch_command(script, script_args, servers=2, workers=2, launcher_args=()):
    return [tessera_bin(), "launch", "--servers", str(servers), "--workers", str(workers), "--grace_s", "5",
            *launcher_args, "--program", sys.executable, "--", os.path.join(source_dir(), script), *script_args]


class Run:
    def __init__(self, code, output):
        self.exit_code = code
        self.output = output

    def summary(self):
        """Worker 0's "summary: {...}" line as a dict (None when absent)."""
        for line in self.output.splitlines():
            i = line.find("summary: {")
            if i >= 0:
                return json.loads(line[i + len("summary: "):])
        return None


def run_job(script, script_args, servers=2, workers=2, timeout_s=150, env=None, launcher_args=()):
    cmd = launch_command(script, script_args, servers, workers, launcher_args)
    e = dict(os.environ)
    e.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
    e.update(env or {})
    with tempfile.TemporaryFile(mode="w+") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, env=e,
                           cwd=source_dir())
        out.seek(0)
        return Run(p.returncode, out.read())
