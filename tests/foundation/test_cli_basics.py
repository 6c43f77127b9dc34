import json
import subprocess
import sys

from emox_edge._version import __version__
from emox_edge.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"emox-edge {__version__}"


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for command in ("doctor", "convert"):
        assert command in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: emox-edge" in capsys.readouterr().out


def test_doctor_json_reports_required_packages(capsys):
    code = main(["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    for name in ("numpy", "onnxruntime", "llama-cpp-python", "opencv-python", "gguf"):
        assert checks[name]["ok"], checks[name]
    assert "CPUExecutionProvider" in checks["onnxruntime providers"]["detail"]
    assert "cameras" in checks and "microphones" in checks
    assert code == (0 if all(c["ok"] for c in checks.values() if c["required"]) else 1)


def test_console_script_runs_without_torch_import():
    code = (
        "import sys, emox_edge.cli.main as m\n"
        "try:\n    m.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
