"""manifest.sha256: lists the run's results and evidence, detects any change, and agrees with sha256sum -c."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from aovpn_lab.report import manifest, runfile
from aovpn_lab.report.manifest import MANIFEST, ManifestError

SHA256SUM = shutil.which("sha256sum")


def run_folder(root: Path) -> Path:
    """A run folder as the suite leaves it: results, evidence, and pages that are regenerated."""
    run_dir = root / "20261202T101500Z-1a2b3c"
    cells = [{"id": "a", "nodeid": "t.py::test[a]", "state": "pass", "requirements": ["AOVPN-IKE-CONN-001"],
              "captures": ["captures/a/client.pcap"]},
             {"id": "b", "nodeid": "t.py::test[b]", "state": "fail", "requirements": ["AOVPN-IKE-FRAG-001"],
              "captures": ["extra/b.log"]}]
    runfile.write(run_dir / "results.json", {"tool": "aovpn-lab", "schema": 2, "run_id": run_dir.name,
                                             "cells": cells})
    for name, data in {"captures/a/client.pcap": b"\xd4\xc3\xb2\xa1pcap", "captures/a/server.pcap": b"server",
                       "extra/b.log": b"log", "junit.xml": b"<testsuites/>", "pytest-html.html": b"<html/>",
                       "report.html": b"<html>regenerated</html>", "report.png": b"png",
                       "certification.html": b"<html/>", "certification.pdf": b"%PDF"}.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(data)
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return run_folder(tmp_path)


def test_the_manifest_lists_results_and_every_evidence_file_but_not_regenerated_pages(run_dir: Path):
    names = [name for name, _ in manifest.build(run_dir)]
    assert names == ["captures/a/client.pcap", "captures/a/server.pcap", "extra/b.log", "junit.xml",
                     "pytest-html.html", "results.json"]


def test_each_digest_is_the_sha256_of_the_file(run_dir: Path):
    for name, digest in manifest.build(run_dir):
        assert digest == hashlib.sha256((run_dir / name).read_bytes()).hexdigest()


def test_a_written_manifest_reads_back_and_verifies(run_dir: Path):
    path = manifest.write(run_dir)
    assert path == run_dir / MANIFEST
    assert manifest.read(run_dir) == manifest.build(run_dir)
    result = manifest.verify(run_dir)
    assert result.ok and not result.mismatched and not result.missing and not result.extra
    assert result.manifest_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tampered_evidence_file_is_detected(run_dir: Path):
    manifest.write(run_dir)
    (run_dir / "captures/a/server.pcap").write_bytes(b"changed")
    result = manifest.verify(run_dir)
    assert not result.ok
    assert result.mismatched == ("captures/a/server.pcap",)


def test_a_removed_file_is_missing_and_an_added_one_is_reported_without_failing(run_dir: Path):
    manifest.write(run_dir)
    (run_dir / "junit.xml").unlink()
    (run_dir / "captures/late.pcap").write_bytes(b"late")
    result = manifest.verify(run_dir)
    assert result.missing == ("junit.xml",) and result.extra == ("captures/late.pcap",)
    assert not result.ok
    (run_dir / "junit.xml").write_bytes(b"<testsuites/>")
    assert manifest.verify(run_dir).ok


def test_regenerating_the_pages_leaves_the_manifest_valid(run_dir: Path):
    manifest.write(run_dir)
    for name in ("report.html", "report.png", "certification.html", "certification.pdf"):
        (run_dir / name).write_bytes(b"rebuilt")
    assert manifest.verify(run_dir).ok


@pytest.mark.skipif(SHA256SUM is None, reason="coreutils sha256sum not installed")
def test_sha256sum_c_agrees_with_verify_on_an_intact_and_a_tampered_folder(run_dir: Path):
    manifest.write(run_dir)
    check = [SHA256SUM, "-c", "--quiet", MANIFEST]
    assert subprocess.run(check, cwd=run_dir, capture_output=True).returncode == 0
    (run_dir / "results.json").write_text((run_dir / "results.json").read_text().replace('"fail"', '"pass"'))
    assert not manifest.verify(run_dir).ok
    assert subprocess.run(check, cwd=run_dir, capture_output=True).returncode != 0


@pytest.mark.skipif(SHA256SUM is None, reason="coreutils sha256sum not installed")
def test_a_file_name_with_a_backslash_is_escaped_as_sha256sum_escapes_it(run_dir: Path):
    (run_dir / "captures" / "odd\\name.pcap").write_bytes(b"odd")
    manifest.write(run_dir)
    assert any(line.startswith("\\") for line in (run_dir / MANIFEST).read_text().splitlines())
    assert manifest.verify(run_dir).ok
    assert subprocess.run([SHA256SUM, "-c", "--quiet", MANIFEST], cwd=run_dir, capture_output=True).returncode == 0


def test_a_folder_without_a_manifest_says_so_in_one_line(run_dir: Path):
    with pytest.raises(ManifestError) as exc:
        manifest.verify(run_dir)
    assert str(exc.value).startswith(f"{run_dir / MANIFEST}: no manifest") and "\n" not in str(exc.value)


def test_a_malformed_manifest_line_is_named_by_file_and_line(run_dir: Path):
    manifest.write(run_dir)
    with (run_dir / MANIFEST).open("a") as f:
        f.write("not a digest  results.json\n")
    with pytest.raises(ManifestError) as exc:
        manifest.read(run_dir)
    assert f"{MANIFEST}:7: not a sha256sum line" in str(exc.value)


def test_a_manifest_naming_a_file_outside_the_run_folder_is_refused(run_dir: Path):
    (run_dir / MANIFEST).write_text("0" * 64 + "  ../elsewhere/results.json\n")
    with pytest.raises(ManifestError) as exc:
        manifest.verify(run_dir)
    assert "outside the run folder" in str(exc.value)


def test_a_folder_without_results_is_not_a_run(tmp_path: Path):
    with pytest.raises(runfile.ResultsFormatError) as exc:
        manifest.build(tmp_path)
    assert "results.json: no such file" in str(exc.value)
