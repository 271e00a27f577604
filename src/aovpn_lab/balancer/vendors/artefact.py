"""A rendered vendor configuration: named text files, written to a folder and read back."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artefact:
    vendor: str
    files: dict[str, str]   # file name -> text

    def write(self, out: Path) -> list[Path]:
        folder = out / self.vendor
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.files.items():
            path = folder / name
            path.write_text(text)
            written.append(path)
        return written

    @classmethod
    def read(cls, vendor: str, folder: Path, names: tuple[str, ...]) -> "Artefact":
        return cls(vendor, {n: (folder / n).read_text() for n in names})
