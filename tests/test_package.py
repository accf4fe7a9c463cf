"""The package is complete without the notebooks: a wheel built from the repository imports on its own."""
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "moons_vae"
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                 if p.stem not in ("__init__", "_modidx") and "__pycache__" not in p.parts)   # every module, sub-packages too


def test_wheel_has_every_module_and_imports(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("moons_vae-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert len(MODULES) >= 25 and all(f"moons_vae/{m.replace('.', '/')}.py" in names for m in MODULES), sorted(n for n in names if n.endswith(".py"))
    assert any(n.endswith("entry_points.txt") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import sys, importlib; sys.path.insert(0, sys.argv[1]); import moons_vae; "
            "assert moons_vae.__file__.startswith(sys.argv[1]), moons_vae.__file__; "
            f"[importlib.import_module('moons_vae.' + m) for m in {MODULES!r}]; print(moons_vae.__version__)")
    r = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == __import__("moons_vae").__version__


def test_nbdev_export_spelled_as_the_design_card_says(tmp_path):
    "`nbdev_export` (nbdev's old name, used by the design card and older tutorials) is installed and exports like `nbdev-export`."
    exe = Path(sys.executable).parent / "nbdev_export"
    assert exe.is_file(), "the project's `nbdev_export` console script is missing: reinstall with `pip install -e .`"
    import shutil
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "_book", "data", "search", "__pycache__"))
    (repo / "moons_vae" / "files.py").unlink()                     # a module missing from the package comes back
    r = subprocess.run([str(exe)], cwd=repo, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (repo / "moons_vae" / "files.py").read_text() == (ROOT / "moons_vae" / "files.py").read_text()
