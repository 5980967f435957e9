"""Generate the Python stubs for proto/ into clients/python/.

    python scripts/generate_stubs.py          # write the stubs
    python scripts/generate_stubs.py --check  # exit 1 when the committed stubs are stale

The generated modules import each other as ``guardrail.v1.*``, so they live in
the top-level ``guardrail`` package of the client distribution.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
VENDORED_ROOT = ROOT / "third_party" / "proto"
OUTPUT_ROOT = ROOT / "clients" / "python"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output_root: Path) -> None:
    well_known = resources.files("grpc_tools") / "_proto"
    for proto in proto_files():
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{VENDORED_ROOT}",
            f"-I{well_known}",
            f"--python_out={output_root}",
            f"--pyi_out={output_root}",
            f"--grpc_python_out={output_root}",
            str(proto.relative_to(PROTO_ROOT)),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")
    for package in {p.parent.relative_to(PROTO_ROOT) for p in proto_files()}:
        for level in range(1, len(package.parts) + 1):
            init = output_root.joinpath(*package.parts[:level], "__init__.py")
            init.touch()


def generated_files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.name.endswith(GENERATED_SUFFIXES)
    )


def stale_files() -> list[str]:
    """Names of generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        committed = [p for p in generated_files(OUTPUT_ROOT) if p.parts[0] == "guardrail"]
        expected = generated_files(fresh)
        stale = sorted(set(map(str, expected)) ^ set(map(str, committed)))
        for rel in expected:
            target = OUTPUT_ROOT / rel
            if target.exists() and not filecmp.cmp(fresh / rel, target, shallow=False):
                stale.append(str(rel))
        return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    args = parser.parse_args()
    if not args.check:
        generate(OUTPUT_ROOT)
        return 0
    stale = stale_files()
    for name in stale:
        print(f"stale generated stub: clients/python/{name}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
