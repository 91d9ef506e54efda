"""llama.cpp's own C++ server (``llama-server``), built for the serving benchmark.

It is the peer a user who serves a small model on CPUs would most likely pick: parallel
slots with continuous batching, no Python in the token loop. plinth does not depend on it;
only ``bench/serving.py`` uses it.

The build uses the llama.cpp sources that the installed llama-cpp-python was built from:
its source distribution vendors them (``vendor/llama.cpp``). The steps, each skipped when
its output is already cached under ``bench/.work/llama-server/``:

1. ``pip download --no-deps --no-binary :all: llama-cpp-python==<installed version>``;
2. unpack the archive;
3. configure with CMake (Release, ``-DLLAMA_CURL=OFF``, no HTTPS, no prebuilt web UI, server
   on, tests and examples off) and build only the ``llama-server`` target, ``-j2`` unless ``--jobs`` says otherwise.

llama.cpp compiles for the CPU it is built on (``GGML_NATIVE``), so the cache is keyed by
this machine's CPU slug (``bench/machine.py``): a copy of ``bench/.work`` moved to another
CPU kind builds again instead of running code the CPU may not have.

    .venv/bin/python bench/llama_server.py            # build (or find) it, print its path
    .venv/bin/python bench/llama_server.py --jobs 4   # build with 4 compile jobs
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "llama-server"
PACKAGE = "llama-cpp-python"


def installed_version() -> str:
    """The llama-cpp-python version in this interpreter's environment."""
    return importlib.metadata.version(PACKAGE)


def cpu_slug() -> str:
    from machine import describe

    return str(describe(with_torch=False)["slug"])


def _run(cmd: list[str], log: Path, **kw: object) -> None:
    """Run a build step, its output appended to ``log``; a failure shows the log's tail."""
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, **kw).returncode  # type: ignore[call-overload]
    if rc != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{cmd[0]} failed with exit code {rc} (full log: {log}):\n{tail}")


def sources(version: str, log: Path) -> Path:
    """The llama.cpp source tree vendored in the llama-cpp-python ``version`` sdist."""
    unpacked = WORK / f"llama_cpp_python-{version}"
    tree = unpacked / "vendor" / "llama.cpp"
    if (tree / "CMakeLists.txt").exists():
        return tree
    dl = WORK / "sdist"
    dl.mkdir(parents=True, exist_ok=True)
    archives = sorted(dl.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not archives:
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"{PACKAGE}=={version}", "-d", str(dl)],
            log,
        )
        archives = sorted(dl.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not archives:
        raise RuntimeError(f"pip did not leave llama_cpp_python-{version}.tar.gz in {dl}")
    partial = WORK / f".unpack-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(archives[0]) as tar:
        tar.extractall(partial, filter="data")
    top = partial / f"llama_cpp_python-{version}"
    if not (top / "vendor" / "llama.cpp" / "CMakeLists.txt").exists():
        raise RuntimeError(f"{archives[0].name} holds no vendor/llama.cpp sources")
    shutil.rmtree(unpacked, ignore_errors=True)
    top.rename(unpacked)
    shutil.rmtree(partial, ignore_errors=True)
    return tree


def ensure_llama_server(jobs: int = 2, quiet: bool = False) -> Path:
    """The path of a ``llama-server`` built for this CPU from the installed llama-cpp-python's
    sources, building it first if it is not cached (about 10 minutes on two busy cores)."""
    version = installed_version()
    slug = cpu_slug()
    build = WORK / f"build-{version}-{slug}"
    binary = build / "bin" / "llama-server"
    if binary.exists():
        return binary
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / f"build-{version}-{slug}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build of the same tree waits for the first
        if binary.exists():
            return binary
        return _build(version, slug, build, binary, jobs, quiet)


def _build(version: str, slug: str, build: Path, binary: Path, jobs: int, quiet: bool) -> Path:
    log = WORK / f"build-{version}-{slug}.log"
    log.write_text("")
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building llama-server needs {tool} (e.g. apt-get install cmake g++)")
    t0 = time.monotonic()
    if not quiet:
        print(f"building llama-server from llama-cpp-python {version} for {slug} (log: {log})", flush=True)
    tree = sources(version, log)
    _run(
        [
            "cmake",
            "-S",
            str(tree),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_USE_PREBUILT_UI=OFF",  # no web UI assets: they would be fetched from a model hub
            "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DGGML_NATIVE=ON",
            "-DBUILD_SHARED_LIBS=OFF",
        ],
        log,
    )
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(jobs)}
    _run(["cmake", "--build", str(build), "--config", "Release", "--target", "llama-server", "-j", str(jobs)], log, env=env)
    if not binary.exists():
        raise RuntimeError(f"the build finished but {binary} is missing (log: {log})")
    if not quiet:
        print(f"built {binary} in {time.monotonic() - t0:.0f} s", flush=True)
    return binary


def server_version(binary: Path) -> str:
    """``llama-server --version`` in one line (the llama.cpp build number and commit)."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip().startswith("version")]
    return lines[0] if lines else "unknown"


def server_command(binary: Path, gguf: Path, *, port: int, alias: str, threads: int, slots: int, ctx_per_slot: int) -> list[str]:
    """How the benchmark starts it: ``slots`` parallel slots with continuous batching, each
    with ``ctx_per_slot`` tokens of context, on ``threads`` threads. Weight repacking (extra
    buffer types) is off, as in plinth and the other llama.cpp peers (docs/adr/0012), so all
    run the same kernels."""
    return [
        str(binary),
        "--model",
        str(gguf),
        "--alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--parallel",
        str(slots),
        "--cont-batching",
        "--ctx-size",
        str(ctx_per_slot * slots),
        "--no-repack",
        "--no-webui",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = ap.parse_args()
    binary = ensure_llama_server(jobs=args.jobs)
    print(binary)
    print(server_version(binary))


if __name__ == "__main__":
    main()
