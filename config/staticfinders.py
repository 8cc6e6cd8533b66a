"""Serve JavaScript that a pinned Python package ships (no CDN, no npm): plotly.min.js from plotly."""

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

# static path -> (package, file inside the package)
VENDORED = {"vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js")}


def _source(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


class VendoredPackageFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path not in VENDORED:
            return [] if find_all else None
        found = _source(*VENDORED[path])
        if found is None:
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for static_path, (package, relative) in VENDORED.items():
            found = _source(package, relative)
            if found is not None:
                # collectstatic copies storage.open(name) to name: expose the file under its static path.
                yield static_path, _SingleFileStorage(found, static_path)


class _SingleFileStorage(FileSystemStorage):
    def __init__(self, source: Path, name: str) -> None:
        super().__init__(location=str(source.parent))
        self._source, self._name = source, name

    def path(self, name):
        return str(self._source) if name == self._name else super().path(name)

    def open(self, name, mode="rb"):
        return super().open(self._source.name if name == self._name else name, mode)
