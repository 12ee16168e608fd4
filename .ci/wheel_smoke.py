"""What a new user does first, run against an installed wheel (no checkout on the path, no test extra).

Run by .ci/wheel_check.sh with the clean virtual environment's python, isolated (``python -I``) and from an empty
folder, so that ``import hrnas`` can only find the installed package. Exits non-zero with a message on the first
check that fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    shown = " ".join(args if len(" ".join(args)) < 160 else [*args[:3], "..."])
    print(f"$ {shown}\n{proc.stdout}{proc.stderr}", end="" if (proc.stdout + proc.stderr).endswith("\n") else "\n")
    if proc.returncode != 0:
        sys.exit(f"wheel check: `{shown}` exited with {proc.returncode}")
    return proc


def main() -> None:
    python = sys.executable
    bindir = Path(python).parent
    with tempfile.TemporaryDirectory(prefix="hrnas-wheel-") as tmp:
        os.chdir(tmp)
        # nothing the user has not made: an empty weights directory and an empty Hugging Face cache
        env = dict(os.environ, HRNAS_WEIGHTS_DIR=f"{tmp}/weights", HF_HOME=f"{tmp}/hf", HF_HUB_CACHE=f"{tmp}/hf/hub")
        env.pop("PYTHONPATH", None)
        env.pop("HF_HUB_OFFLINE", None)  # as a user who never set it; hrnas asks no Hub for unpublished weights

        where = run([python, "-I", "-c", "import hrnas; print(hrnas.__file__)"], env).stdout.strip()
        if "site-packages" not in where:
            sys.exit(f"wheel check: hrnas was imported from {where}, not from the installed wheel")
        run([python, "-I", "-c", "import hrnas; m = hrnas.create_model('hrnas_cls_a'); print(type(m).__name__)"], env)
        version = run([str(bindir / "hrnas"), "--version"], env).stdout.strip()
        expected = run([python, "-I", "-c", "import hrnas; print(hrnas.__version__)"], env).stdout.strip()
        if version != f"hrnas {expected}":
            sys.exit(f"wheel check: `hrnas --version` printed {version!r}, expected 'hrnas {expected}'")
        listing = run([str(bindir / "hrnas"), "list"], env).stdout
        if "hrnas_seg_a" not in listing or "hrnas zoo-build hrnas_seg_a" not in listing:
            sys.exit("wheel check: `hrnas list` does not show hrnas_seg_a and the command that builds its weights")

        # the design card's first line: no weights anywhere here, so one sentence, at once
        proc = run(
            [python, "-I", "-c", textwrap.dedent("""
                import time, hrnas
                hrnas.create_model("hrnas_cls_a")  # torch and timm imported: what follows is the weights request
                start = time.perf_counter()
                try:
                    hrnas.create_model("hrnas_seg_a", pretrained=True)
                    print("loaded")
                except hrnas.WeightsUnavailableError as e:
                    print("error:", e)
                print("seconds:", round(time.perf_counter() - start, 3))
            """)],
            env,
        )  # fmt: skip
        lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
        message, seconds = lines.get("error", ""), float(lines["seconds"])
        if "`hrnas zoo-build hrnas_seg_a`" not in message or message.count(". ") or seconds >= 5:
            sys.exit(f"wheel check: expected one sentence with `hrnas zoo-build hrnas_seg_a` within 5 s: {proc.stdout}")

        # and once a local directory holds the weights, the bare name loads them
        run(
            [python, "-I", "-c", textwrap.dedent("""
                import os, torch, hrnas
                torch.manual_seed(0)
                made = hrnas.create_model("hrnas_cls_a.fmnist")
                hrnas.save_pretrained(made, os.path.join(os.environ["HRNAS_WEIGHTS_DIR"], "hrnas_cls_a.fmnist"),
                                      architecture="hrnas_cls_a")
                loaded = hrnas.create_model("hrnas_cls_a", pretrained=True)
                assert loaded.num_classes == 10, loaded.num_classes
                assert all(torch.equal(v, made.state_dict()[k]) for k, v in loaded.state_dict().items())
                print("the bare name loaded its default tag from", os.environ["HRNAS_WEIGHTS_DIR"])
            """)],
            env,
        )  # fmt: skip
    print(f"wheel check passed (the weights error came after {seconds:.2f} s)")


if __name__ == "__main__":
    main()
