"""Checks a built wheel against the sdist it was built from: the wheel holds
exactly the package's files from the sdist (code, py.typed, bundled data,
any weights or JSON), the compiled module and its generated stub, and the
licence files; nothing else (no tests, caches or build leftovers).

Usage: python .ci/check_wheel.py dist/fastkin-*.tar.gz dist/fastkin-*.whl
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile


def main(sdist: str, wheel: str) -> int:
    with tarfile.open(sdist) as tar:
        prefix = tar.getnames()[0].split("/")[0] + "/python/"
        expected = {m.name[len(prefix) :] for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)}
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    package = {n for n in names if not re.match(r"[^/]+\.dist-info/", n)}
    compiled = {n for n in package if re.fullmatch(r"fastkin/_core\.[^/]*(\.so|\.pyd)", n)}
    problems = []
    if len(compiled) != 1:
        problems.append(f"expected one compiled fastkin/_core module, found {sorted(compiled)}")
    for required in ("fastkin/_core.pyi", "fastkin/py.typed", "fastkin/data/ATTRIBUTION.md"):
        if required not in package:
            problems.append(f"missing {required}")
    missing = expected - package
    extra = package - expected - compiled - {"fastkin/_core.pyi"}
    if missing:
        problems.append(f"package files of the sdist missing from the wheel: {sorted(missing)}")
    if extra:
        problems.append(f"files in the wheel that are not package files: {sorted(extra)}")
    licences = {n.split("/", 2)[-1] for n in names if re.match(r"[^/]+\.dist-info/licenses/", n)}
    if not {"LICENSE", "THIRD_PARTY_NOTICES.md"} <= licences:
        problems.append(f"licence files in the wheel: {sorted(licences)}")
    for problem in problems:
        print(f"check_wheel: {problem}", file=sys.stderr)
    if not problems:
        data = sorted(n for n in package if n.endswith((".pt", ".json", ".bvh", ".glb")))
        print(f"check_wheel: {len(package)} package files as expected, data: {', '.join(data)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
