"""Scale-out options and flags, and that nothing of Ray is imported unless asked (no Ray instance here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from emox_edge.errors import BadInputError
from emox_edge.scaleout import ScaleoutOptions, parse_replicas


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_the_server_and_its_help_import_no_ray():
    done = _python(
        "import sys, contextlib, io\n"
        "import emox_edge.serve, emox_edge.scaleout\n"
        "from emox_edge.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['serve', '--help'])\n"
        "assert '--ray' in out.getvalue() and '--replicas analysis=N' in out.getvalue(), out.getvalue()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_ray_extra_serve_ray_says_what_to_install():
    done = _python(
        "import sys\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from emox_edge.cli.main import main\n"
        "raise SystemExit(main(['serve', '--ray', '--bundle', '/nonexistent']))\n")
    assert done.returncode == 2, done.stderr
    assert "MissingDependencyError" in done.stderr and "pip install 'emox-edge[ray]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("flags, message", [
    (["--replicas", "analysis=2"], "need --ray"),
    (["--autoscale"], "need --ray"),
    (["--ray", "--replicas", "perception=2,language=1"], "whole-analyzer replicas"),
    (["--ray", "--workers", "2"], "--replicas analysis=N"),
    (["--ray", "--address", "http://head:6379"], "auto, ray://HOST:PORT"),
])
def test_misused_scaleout_flags_exit_2_with_one_line(flags, message):
    done = _python("import sys\nsys.modules['ray'] = None\nfrom emox_edge.cli.main import main\n"
                   f"raise SystemExit(main(['serve', '--bundle', '/nonexistent', *{flags!r}]))\n")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_replicas_are_analysis_n():
    assert parse_replicas("analysis=3") == 3 == parse_replicas(" 3 ")
    assert ScaleoutOptions(replicas="analysis=4", autoscale=True, min_replicas=2).replica_count == 4
    for bad in ("analysis=0", "analysis=two", "gpu=1", "analysis=1,analysis=2", ""):
        with pytest.raises(BadInputError, match="analysis=N|twice"):
            parse_replicas(bad)
    with pytest.raises(BadInputError, match="perception replicas are not available"):
        parse_replicas("perception=1,language=2")


@pytest.mark.parametrize("fields, name", [
    ({"address": "http://head:6379"}, "address"),
    ({"address": "auto; rm -rf /"}, "address"),
    ({"min_replicas": 3}, "min_replicas"),
    ({"cpus_per_replica": 0, "gpus_per_replica": 0}, "cpus_per_replica"),
    ({"gpus_per_replica": -1}, "gpus_per_replica"),
    ({"request_timeout_s": 0}, "request_timeout_s"),
    ({"num_cpus": 0}, "num_cpus"),
    ({"object_store_mb": 10}, "object_store_mb"),
    ({"app_name": "no spaces"}, "app_name"),
])
def test_bad_scaleout_options_name_the_option(fields, name):
    with pytest.raises(BadInputError, match=f"option {name}="):
        ScaleoutOptions(**fields)


def test_good_addresses():
    for address in ("auto", "ray://10.0.0.5:10001", "head.local:6379", None):
        assert ScaleoutOptions(address=address).local is (address is None)
