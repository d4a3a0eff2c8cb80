"""The files a release ships, and one version everywhere.

LICENSE (the Apache License 2.0 that pyproject.toml declares), CHANGELOG.md, CONTRIBUTING.md and
CITATION.cff exist. The version in pyproject.toml is the one CITATION.cff cites, the newest
entry of CHANGELOG.md and, when jaxconv is installed, `jaxconv.__version__` (read from the
installed metadata: after a version bump, ``pip install --no-deps -e .`` again).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import jaxconv

ROOT = Path(__file__).resolve().parents[2]
RELEASE_FILES = ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", "CITATION.cff")
CFF_REQUIRED = ("cff-version", "message", "title", "version", "authors", "license")


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def pyproject_version() -> str:
    """`version` of pyproject.toml's [project] table."""
    text = read("pyproject.toml")
    try:
        import tomllib
    except ImportError:  # Python 3.10: the [project] table's `version = "..."` line
        table = re.search(r"^\[project\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        assert table, "pyproject.toml has no [project] table"
        match = re.search(r'^version\s*=\s*"([^"]+)"', table.group(1), re.M)
        assert match, "[project] has no version"
        return match.group(1)
    return tomllib.loads(text)["project"]["version"]


def cff_line_value(text: str, key: str) -> str | None:
    """The scalar value of a top-level `key:` line of CITATION.cff, unquoted (None if absent)."""
    match = re.search(rf"^{re.escape(key)}:[ \t]*(.*?)[ \t]*$", text, re.M)
    return None if match is None else match.group(1).strip("\"'")


@pytest.mark.parametrize("name", RELEASE_FILES)
def test_release_file_exists(name):
    path = ROOT / name
    assert path.is_file(), f"{name} is missing"
    assert path.read_text(encoding="utf-8").strip(), f"{name} is empty"


def test_license_is_apache_2():
    text = read("LICENSE")
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # the appendix's boilerplate notice, filled in
    assert "Copyright 2026 The jaxconv authors" in text
    assert "[yyyy]" not in text and "[name of copyright owner]" not in text
    assert re.search(r'^license\s*=\s*"Apache-2\.0"', read("pyproject.toml"), re.M)


def test_citation_version_is_pyproject_version():
    assert cff_line_value(read("CITATION.cff"), "version") == pyproject_version()


def test_installed_version_is_pyproject_version():
    try:
        installed = importlib.metadata.version("jaxconv")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("jaxconv is not installed (running from a source tree)")
    want = pyproject_version()
    assert installed == want, f"installed {installed}, pyproject {want}: pip install -e . again"
    assert jaxconv.__version__ == want


def test_changelog_newest_release_is_this_version():
    """CHANGELOG.md has a `## [<version>]` heading for pyproject's version, and it is the
    newest release listed (an `## [Unreleased]` section may come first)."""
    version = pyproject_version()
    releases = re.findall(r"^## \[([^\]]+)\]", read("CHANGELOG.md"), re.M)
    assert version in releases, f"CHANGELOG.md has no '## [{version}]' heading"
    newest = [r for r in releases if r.lower() != "unreleased"][0]
    assert newest == version, (newest, version)


def test_citation_lines():
    """CITATION.cff without a YAML parser: the required top-level keys, CFF 1.2.0, the license."""
    text = read("CITATION.cff")
    for key in CFF_REQUIRED:
        assert re.search(rf"^{re.escape(key)}:", text, re.M), f"CITATION.cff lacks `{key}:`"
    assert cff_line_value(text, "cff-version") == "1.2.0"
    assert cff_line_value(text, "license") == "Apache-2.0"
    assert re.search(r"^  - name: .*jaxconv authors", text, re.M)
    assert "\t" not in text  # YAML indents with spaces only


def test_citation_is_valid_yaml():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(read("CITATION.cff"))
    assert isinstance(data, dict)
    assert set(CFF_REQUIRED) <= set(data), sorted(set(CFF_REQUIRED) - set(data))
    assert str(data["cff-version"]) == "1.2.0"
    assert str(data["version"]) == pyproject_version()
    assert data["license"] == "Apache-2.0"
    assert isinstance(data["message"], str) and isinstance(data["title"], str)
    assert data["authors"] == [{"name": "The jaxconv authors"}]
    assert all(isinstance(k, str) for k in data.get("keywords", []))
    if "date-released" in data:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(data["date-released"]))
