"""What ships: a plain `pip install .` carries the migrations and the manifest the program reads at
run time, and the Dockerfile builds that same package into a non-root image with a health check.
(No Docker engine runs on the CI machine, so the image itself is not built here.)"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_the_wheel_carries_what_the_program_reads_at_run_time(tmp_path: Path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("migration_guard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted((REPO / "bot/migrations/versions").glob("*.py"))
    assert migrations and all(f"bot/migrations/versions/{m.name}" in names for m in migrations)
    assert {"bot/migrations/env.py", "bot/migrations/script.py.mako", "bot/manifest.yml"} <= names
    assert {"adapters/zendesk.py", "commands/pause.py", "bot/cli.py"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "migration-guard = bot.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_dockerfile_installs_the_package_runs_as_non_root_and_checks_health():
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+)", dockerfile, flags=re.MULTILINE))
    assert {"bot", "commands", "adapters", "pyproject.toml"} <= copied
    assert re.search(r"^RUN pip install \.", dockerfile, flags=re.MULTILINE), "a plain install, not editable"
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["migration-guard", "serve"]')
