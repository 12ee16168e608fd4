"""Install every dependency floor that pyproject.toml declares, and run a fast subset of the tests on them.

    python3 .ci/min_deps.py [--venv DIR] [--install-only | pytest arguments...]        (make min-deps-check)

Each ``name>=X`` of ``dependencies`` and of the ``test``, ``data`` and ``onnx`` extras is pinned to ``name==X``
(torch, whose wheels are gigabytes, to the floor's release series ``2.14.*``: the patch release the machine holds),
hrnas is installed from
this checkout with those pins, the installed versions are checked against them, and then pytest runs the tests
that exercise each dependency (the Hub cache through huggingface_hub, safetensors files, fvcore profiles, data
readers through Pillow, scikit-image and tifffile, ONNX export), and ruff checks the code at its floor. A floor
that fails here must be raised in pyproject.toml: the floors are what this check has run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("test", "data", "onnx")
SERIES = {"torch"}  # pinned to the floor's release series, not its first patch release
# Floors no test can exercise here are installed all the same (so that they at least install together).
TESTS = [
    "tests/test_hub.py",
    "tests/test_weights.py",
    "tests/test_startup.py",
    "tests/test_cli.py",
    "tests/test_errors.py",
    "tests/test_packaging.py",
    "tests/test_data.py",
    "tests/test_textured.py",
    "tests/test_deploy_export.py",
    "-m",
    "fast",
]


def floors() -> dict[str, str]:
    """``{distribution name: pinned requirement}`` for every floor of the dependencies and the checked extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?>=([0-9][0-9A-Za-z.]*)", req.replace(" ", ""))
        if m is None:
            sys.exit(f"min-deps: {req!r} in pyproject.toml has no plain `>=` floor; give it one")
        name, version = m.group(1).lower().replace("_", "-"), m.group(3)
        pin = f"{name}=={version}.*" if name in SERIES else f"{name}=={version}"
        if out.get(name, pin) != pin:
            sys.exit(f"min-deps: {name} has two different floors in pyproject.toml")
        out[name] = pin
    return out


def _norm(version: str) -> str:
    parts = version.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(args), flush=True)
    return subprocess.run(args, check=True, **kwargs)


def main(argv: list[str]) -> int:
    venv = Path(os.environ.get("MIN_DEPS_VENV", "/tmp/hrnas-min-deps/venv"))
    if argv[:1] == ["--venv"]:
        venv, argv = Path(argv[1]), argv[2:]
    install_only = argv[:1] == ["--install-only"]
    pins = floors()
    constraints = venv.parent / "constraints.txt"
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", str(venv)])
    constraints.write_text("".join(f"{pin}\n" for pin in pins.values()))
    run([str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), "-e", f"{ROOT}[{','.join(EXTRAS)}]"])
    frozen = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout
    pairs = [line.split("==", 1) for line in frozen.splitlines() if "==" in line]
    installed = {name.lower().replace("_", "-"): version for name, version in pairs}
    wrong = []
    for name, pin in pins.items():
        want = pin.split("==")[1]
        have = installed.get(name, "missing")
        ok = have.startswith(want[:-1]) if want.endswith(".*") else _norm(have) == _norm(want)
        print(f"{name:<20} floor {want:<26} installed {have}")
        if not ok:
            wrong.append(f"{name} {have} (floor {want})")
    if wrong:
        sys.exit("min-deps: not installed at the floor: " + ", ".join(wrong))
    # the nuclei image and mask ship inside stardist (not a dependency: its files only, read with tifffile)
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "stardist"])
    if install_only:
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    bindir = venv / "bin"
    run([str(bindir / "ruff"), "check", "."], cwd=ROOT)
    run([str(bindir / "ruff"), "format", "--check", "."], cwd=ROOT)
    args = argv or TESTS
    run([str(python), "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
