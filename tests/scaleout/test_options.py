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
        "assert '--ray' in out.getvalue() and '--replicas perception=N,language=M' in out.getvalue(), out.getvalue()\n"
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
    (["--replicas", "perception=2"], "need --ray"),
    (["--autoscale"], "need --ray"),
    (["--ray", "--replicas", "analysis=2"], "replaced by a perception and a language-core deployment"),
    (["--ray", "--replicas", "perception=2,vision=1"], "unknown role 'vision'"),
    (["--ray", "--cpus-per-replica", "perception=-1"], "option cpus_per_replica="),
    (["--ray", "--batch-size", "0"], "option batch_size="),
    (["--ray", "--workers", "2"], "--replicas perception=N,language=M"),
    (["--ray", "--address", "http://head:6379"], "auto, ray://HOST:PORT"),
])
def test_misused_scaleout_flags_exit_2_with_one_line(flags, message):
    done = _python("import sys\nsys.modules['ray'] = None\nfrom emox_edge.cli.main import main\n"
                   f"raise SystemExit(main(['serve', '--bundle', '/nonexistent', *{flags!r}]))\n")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_replicas_are_per_role():
    assert parse_replicas("perception=3,language=2") == {"perception": 3, "language": 2}
    assert parse_replicas("language=2") == {"perception": 1, "language": 2} == parse_replicas(" Language = 2 ")
    assert parse_replicas("2") == {"perception": 2, "language": 2}
    options = ScaleoutOptions(replicas="perception=4,language=2", autoscale=True, min_replicas=2, batch_size=4)
    assert options.replica_counts == {"perception": 4, "language": 2} and options.in_flight == 4 + 2 * 4
    assert options.app("language") == "emox-edge-language"
    for bad in ("perception=0", "perception=two", "gpu=1", "perception=1,perception=2", "", "perception=1.5"):
        with pytest.raises(BadInputError, match="perception=N,language=M|twice|unknown role"):
            parse_replicas(bad)
    with pytest.raises(BadInputError, match="'analysis' replicas were replaced"):
        parse_replicas("analysis=2")


def test_resources_are_for_both_roles_or_per_role():
    assert ScaleoutOptions(cpus_per_replica="2").cpus == {"perception": 2.0, "language": 2.0}
    options = ScaleoutOptions(cpus_per_replica="perception=0.5,language=3", gpus_per_replica="perception=0.25")
    assert options.cpus == {"perception": 0.5, "language": 3.0}
    assert options.gpus == {"perception": 0.25, "language": 0.0}
    assert ScaleoutOptions(cpus_per_replica=1.5).cpus["language"] == 1.5  # a number from the API
    assert ScaleoutOptions(cpus_per_replica="language=0", gpus_per_replica="language=1").gpus["language"] == 1.0


@pytest.mark.parametrize("fields, name", [
    ({"address": "http://head:6379"}, "address"),
    ({"address": "auto; rm -rf /"}, "address"),
    ({"min_replicas": 3}, "min_replicas"),
    ({"replicas": "perception=3,language=1", "min_replicas": 2}, "min_replicas"),
    ({"cpus_per_replica": 0, "gpus_per_replica": 0}, "cpus_per_replica"),
    ({"cpus_per_replica": "language=0"}, "cpus_per_replica"),
    ({"cpus_per_replica": "perception=x"}, "cpus_per_replica"),
    ({"gpus_per_replica": -1}, "gpus_per_replica"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 65}, "batch_size"),
    ({"batch_wait_ms": -1}, "batch_wait_ms"),
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


def test_replicas_get_this_process_blas_threads(monkeypatch):
    """Ray sets OMP_NUM_THREADS (so numpy's OpenBLAS threads) for its workers; the replicas get this
    process's settings instead, or, when there are none, as many OpenBLAS threads as their node has."""
    from emox_edge.scaleout.cluster import thread_env

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert thread_env() == {"OPENBLAS_NUM_THREADS": "4096"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_env() == {"OMP_NUM_THREADS": "3"}
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert thread_env() == {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "2"}
