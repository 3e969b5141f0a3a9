"""The wheel holds every module: a package left out of pyproject.toml's list would pass every
other test (they import from the source tree) and fail only for someone who installs the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "handlers", "migrations")


def pip(*args: str | Path, cwd: Path) -> None:
    """This interpreter's pip, offline and deaf to the machine's pip setup: no index (everything
    it needs is here: the wheel, and setuptools and wheel of the dev extra for the build), no
    pip.conf (PIP_CONFIG_FILE=/dev/null), no PIP_* of the developer's shell, no cache, and no
    version check (which would go to the network)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet", "--no-index", "--no-cache-dir"],
        check=True,
        cwd=cwd,
        env=env,
    )


def source_modules() -> list[str]:
    """Every module of the source tree, by its dotted name."""
    names = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts or path.name == "__main__.py":
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts[:2] == ["migrations", "env"]:
                continue  # Alembic's env.py runs only inside Alembic's own context
            names.append(".".join(parts))
    return names


@pytest.mark.slow
def test_the_wheel_installs_and_imports_every_module(tmp_path: Path) -> None:
    # Built from a clean copy: setuptools reuses a build/ folder left in the checkout, which would
    # still hold a package since left out of the list.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=ignore)
    dist = tmp_path / "dist"
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("sfox_deactivate_bot-*.whl")
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The third-party dependencies come from this interpreter's site-packages (no download), added
    # as a plain path: its .pth files, the editable install of this checkout among them, are not run.
    (fresh_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip("install", "--no-deps", "--target", fresh_site, wheel, cwd=tmp_path)
    names = source_modules()
    check = (
        "import importlib, pathlib, sys\n"
        f"site = pathlib.Path({str(fresh_site)!r}).resolve()\n"
        "missing = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        module = importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        missing.append(f'{name}: {exc}')\n"
        "        continue\n"
        "    if site not in pathlib.Path(module.__file__).resolve().parents:\n"
        "        missing.append(f'{name}: imported from {module.__file__}, not from the wheel')\n"
        "print('\\n'.join(missing))\n"
        "sys.exit(1 if missing else 0)\n"
    )
    result = subprocess.run([python, "-c", check, *names], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(names) > 60
    # Alembic's files ship inside the package, so migrations run from any working directory.
    assert (fresh_site / "migrations" / "script.py.mako").exists()
    assert (fresh_site / "migrations" / "env.py").exists()
