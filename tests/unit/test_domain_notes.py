"""docs/domain.md: every section the code, data and tests cite exists as a heading, and the
passages quoted from the notes are in them."""
from __future__ import annotations

import re

from aovpn_lab import paths

NOTES = paths.ROOT / "docs" / "domain.md"
CITING = ["src", "tests", "profiles", "requirements.yml", "README.md"]
# the notes' name, then one or more quoted section names: `, "A"`, `("A")`, `, "A" (note) and "B"`
CITATION = re.compile(r'docs/domain\.md,?\s+\(?((?:"[^"]+")(?:\s*\([^)]*\))?(?:\s+and\s+"[^"]+")*)')
QUOTED = re.compile(r'"([^"]+)"')


def squash(text: str) -> str:
    return " ".join(text.split())


def headings() -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#{2,3} (.+)$", NOTES.read_text(), re.M)}


def citations() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for top in CITING:
        base = paths.ROOT / top
        for f in ([base] if base.is_file() else sorted(base.rglob("*"))):
            if f.suffix not in (".py", ".yml", ".yaml", ".md") or not f.is_file():
                continue
            for m in CITATION.finditer(f.read_text()):
                for name in QUOTED.findall(m.group(1)):
                    if not name.startswith("<"):
                        found.setdefault(squash(name), set()).add(str(f.relative_to(paths.ROOT)))
    return found


def test_every_cited_section_is_a_heading():
    cited = citations()
    assert {"Why deployments break", "Certificates", "Load balancing"} <= set(cited)
    missing = {name: sorted(files) for name, files in cited.items() if name not in headings()}
    assert not missing, missing


def test_quoted_passages_are_in_the_notes():
    notes = squash(NOTES.read_text())
    fallback_doc = squash((paths.ROOT / "src/aovpn_lab/fallback.py").read_text().split('"""')[1])
    rule = re.search(r'"Why deployments break"\): "([^"]+)"', fallback_doc)
    assert rule and rule.group(1) in notes
    assert "5 IP fragments at MTU 1500" in notes   # tests/unit/test_certs_sizemodel.py quotes it


def test_every_cited_load_balancing_section_is_a_heading():
    doc = paths.ROOT / "docs" / "load-balancing.md"
    heads = {m.group(1).strip() for m in re.finditer(r"^#{2,3} (.+)$", doc.read_text(), re.M)}
    cite = re.compile(r'docs/load-balancing\.md,?\s+"([^"]+)"')
    cited = {m.group(1) for top in CITING for f in ([paths.ROOT / top] if (paths.ROOT / top).is_file()
                                                  else sorted((paths.ROOT / top).rglob("*.y*ml")))
             for m in cite.finditer(f.read_text())}
    assert {"Cross-port affinity", "Source NAT", "Health monitors"} <= cited
    assert cited <= heads, cited - heads
