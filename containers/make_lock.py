"""Write requirements.lock: agcframe's runtime dependencies (with the ``xrootd``, ``s3``, ``ml`` and ``servicex`` extras), pinned to the versions installed here.

    python containers/make_lock.py > containers/requirements.lock

The image installs exactly these versions (``pip install --no-deps -r``), so a container
computes what this environment computes. Run it after changing pyproject's dependencies.
"""

from __future__ import annotations

import importlib.metadata
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


#: extras of agcframe the image carries: root:// and s3:// inputs and ServiceX at facilities, XGBoost for the coffea processor's ML stage
IMAGE_EXTRAS = frozenset({"xrootd", "s3", "ml", "servicex"})


def closure(distribution: str, extras: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every distribution ``distribution`` with ``extras`` needs at run time (extras followed), with its installed version."""
    pinned: dict[str, str] = {}
    pending = [(distribution, extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        meta = importlib.metadata.distribution(name)
        pinned[canonicalize_name(meta.metadata["Name"])] = meta.version
        for line in meta.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    pinned.pop(canonicalize_name(distribution))
    return pinned


def main() -> None:
    print(f"# agcframe's runtime dependencies as installed by python {sys.version.split()[0]}; made by containers/make_lock.py")
    for name, version in sorted(closure("agcframe", IMAGE_EXTRAS).items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
