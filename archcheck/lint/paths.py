"""Which spec files a run checks: files as given, directories walked, glob patterns expanded."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from archcheck.config import ConfigError
from archcheck.lint.plan import Plan

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _walk(directory: str, plan: Plan) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = os.path.normpath(os.path.join(dirpath, name))
            if name.endswith(SPEC_SUFFIXES) and not name.startswith(".") and not plan.excluded(path):
                found.append(path)
    return found


def _glob(pattern: str) -> list[str]:
    """``pattern``'s matches, hidden names left out as in a directory walk. pathlib's ``**`` does not
    descend into symlinked directories, where ``glob.glob``'s follows a link to a parent round and round."""
    anchor = Path(Path(pattern).anchor or ".")
    named = set(Path(pattern).parts)  # a hidden name written in the pattern is wanted
    matches = []
    for m in anchor.glob(str(Path(pattern).relative_to(anchor))):
        if not any(part.startswith(".") and part not in named for part in m.relative_to(anchor).parts):
            matches.append(os.path.normpath(m))
    return sorted(matches)


def collect(paths: list[str], plan: Plan) -> list[str]:
    """Spec files named by ``paths``: files as given, directories walked (skipping hidden ones and
    ``exclude``), glob patterns expanded. Names that lead nowhere are a ``ConfigError``."""
    files: list[str] = []
    for arg in paths:
        if os.path.isdir(arg):
            found = _walk(arg, plan)
            if not found:
                raise ConfigError(f"{arg}: no spec files (*.yaml, *.yml, *.json) in this directory or below",
                                  "give spec files, or a directory that holds some")
        elif os.path.lexists(arg):
            found = [arg]
        elif glob.has_magic(arg):
            found = []
            for m in _glob(arg):
                if os.path.isdir(m):
                    found += _walk(m, plan)
                elif m.endswith(SPEC_SUFFIXES) and not plan.excluded(m):
                    found.append(os.path.normpath(m))
            if not found:
                raise ConfigError(f"{arg}: no spec file matches this pattern", "check the pattern")
        else:
            raise ConfigError(f"{arg}: no such file or directory", "check the path")
        files += found
    seen, unique = set(), []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique
