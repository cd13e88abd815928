"""Regenerates the checked-in gRPC stubs from the project's .proto, or checks them.

    python scripts/generate_stubs.py          # rewrite src/lockmgr/v1/lockmgr_pb2*.py*
    python scripts/generate_stubs.py --check  # exit 1 if they differ from a fresh build

The stubs are generated with grpcio-tools and mypy-protobuf (the versions pinned in
pyproject.toml's `test` extra: other versions write other code) into a temporary directory; `--check` compares
them byte for byte with the checked-in ones, so a .proto changed without regenerating
fails CI.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_ROOT.parent.parent
PROTO_ROOT = REPO_ROOT / "proto" / "proto"
PROTO_FILE = "lockmgr/v1/lockmgr.proto"
STUBS_DIR = PACKAGE_ROOT / "src" / "lockmgr" / "v1"
GENERATED = ("lockmgr_pb2.py", "lockmgr_pb2.pyi", "lockmgr_pb2_grpc.py", "lockmgr_pb2_grpc.pyi")
# mypy-protobuf's plugin writes the typed stubs (lockmgr_pb2_grpc.pyi, sync and asyncio).
MYPY_GRPC_PLUGIN = "protoc-gen-mypy_grpc"


def plugin_path() -> str:
    """The mypy-protobuf plugin of this interpreter's environment, else on PATH."""
    beside = Path(sys.executable).parent / MYPY_GRPC_PLUGIN
    found = str(beside) if beside.exists() else shutil.which(MYPY_GRPC_PLUGIN)
    if found is None:
        raise RuntimeError(f"{MYPY_GRPC_PLUGIN} not found: pip install 'lockmgr[test]'")
    return found


def generate(out: Path) -> None:
    """Writes the generated files under `out`/lockmgr/v1/."""
    from grpc_tools import protoc  # the test extra's pinned grpcio-tools

    include = Path(protoc.__file__).parent / "_proto"  # well-known types, as grpc_tools.protoc
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin={MYPY_GRPC_PLUGIN}={plugin_path()}",
        f"--mypy_grpc_out={out}",
        PROTO_FILE,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_ROOT / PROTO_FILE}")


def differences() -> list[str]:
    """A unified diff per generated file that is missing or not current (empty: current)."""
    with tempfile.TemporaryDirectory() as temp:
        generate(Path(temp))
        fresh_dir = Path(temp) / "lockmgr" / "v1"
        diffs = []
        for name in GENERATED:
            fresh = (fresh_dir / name).read_text()
            checked_in_path = STUBS_DIR / name
            checked_in = checked_in_path.read_text() if checked_in_path.exists() else ""
            if fresh != checked_in:
                diff = difflib.unified_diff(
                    checked_in.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    fromfile=f"checked-in {name}",
                    tofile=f"generated {name}",
                )
                diffs.append("".join(diff))
        return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args()
    if args.check:
        diffs = differences()
        for diff in diffs:
            sys.stdout.write(diff[:20_000])
        if diffs:
            print(
                f"\n{len(diffs)} generated stub(s) are not current with {PROTO_FILE}: run "
                "`python clients/python/scripts/generate_stubs.py` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"generated stubs are current with {PROTO_FILE}")
        return 0
    with tempfile.TemporaryDirectory() as temp:
        generate(Path(temp))
        for name in GENERATED:
            shutil.copyfile(Path(temp) / "lockmgr" / "v1" / name, STUBS_DIR / name)
    print(f"wrote {', '.join(GENERATED)} to {STUBS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
