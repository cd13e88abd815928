"""Fixtures that run real ``lockmgr server`` processes on loopback ports, each with its
own data directory under pytest's temporary directory, as the Rust black-box harness
(``tests/src/lib.rs``) does: the same flags, a metrics address of its own per member,
and every process killed at the end, also when a test fails.

The binary is ``$LOCKMGR_BIN``, by default the repository's ``target/debug/lockmgr``
(``cargo build -p lockmgr-cli --bin lockmgr``; ``scripts/test.sh`` builds it first).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lockmgr.v1 import lockmgr_pb2 as pb
from lockmgr.v1 import lockmgr_pb2_grpc as pb_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
# Generous: the suite shares two slow cores with builds and other tests.
READY_TIMEOUT_S = 60.0


def binary() -> Path:
    path = Path(os.environ.get("LOCKMGR_BIN", REPO_ROOT / "target" / "debug" / "lockmgr"))
    if not path.exists():
        pytest.fail(
            f"no lockmgr binary at {path}: build it with "
            "`cargo build --locked -p lockmgr-cli --bin lockmgr`, or set LOCKMGR_BIN"
        )
    return path


_used_ports: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768 and up), so that no
    outgoing connection takes it before the server binds it."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(10_000):
        port = rng.randrange(20_000, 32_000)
        if port in _used_ports:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _used_ports.add(port)
        return port
    raise RuntimeError("no free port")


class Member:
    def __init__(self, root: Path, node_id: int) -> None:
        self.node_id = node_id
        self.client_address = f"127.0.0.1:{free_port()}"
        self.peer_address = f"127.0.0.1:{free_port()}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        self.data_dir = root / f"node-{node_id}"
        self.log_path = root / f"node-{node_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, initial_cluster: str) -> None:
        # The server reads LOCKMGR_* settings from its environment: none of ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKMGR_")}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(binary()),
                "server",
                "--node-id", str(self.node_id),
                "--data-dir", str(self.data_dir),
                "--client-address", self.client_address,
                "--peer-address", self.peer_address,
                "--metrics-address", self.metrics_address,
                "--initial-cluster", initial_cluster,
                "--log", "info,openraft=warn,fjall=warn,lsm_tree=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        log.close()

    def kill(self) -> None:
        """``kill -9``, and reaped."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def leader_id(self) -> int | None:
        """The leader this member knows of (0: none), ``None`` if it does not answer."""
        with grpc.insecure_channel(self.client_address) as channel:
            stub = pb_grpc.ClusterServiceStub(channel)
            try:
                return int(stub.Status(pb.StatusRequest(), timeout=2).leader_id)
            except grpc.RpcError:
                return None


class Cluster:
    """``size`` founding members of a cluster of real processes."""

    def __init__(self, root: Path, size: int) -> None:
        self.members = [Member(root, node_id) for node_id in range(1, size + 1)]
        initial_cluster = ",".join(
            f"{m.node_id}={m.peer_address}/{m.client_address}" for m in self.members
        )
        for member in self.members:
            member.start(initial_cluster)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_address for m in self.members]

    def member(self, node_id: int) -> Member:
        return next(m for m in self.members if m.node_id == node_id)

    def wait_for_leader(self, timeout: float = READY_TIMEOUT_S, other_than: int = 0) -> int:
        """Waits until every running member names the same leader (not ``other_than``);
        its node id."""
        deadline = time.monotonic() + timeout
        while True:
            running = [m for m in self.members if m.running]
            leaders = [m.leader_id() for m in running]
            agreed = leaders and leaders[0] and all(leader == leaders[0] for leader in leaders)
            if agreed and leaders[0] != other_than:
                assert leaders[0] is not None
                return leaders[0]
            for member in self.members:
                if member.process is not None and member.process.poll() is not None:
                    pytest.fail(f"node {member.node_id} exited:\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no leader within {timeout} s (saw {leaders}):\n{self.logs()}")
            time.sleep(0.1)

    def stop(self) -> None:
        for member in self.members:
            member.kill()

    def logs(self) -> str:
        return "\n".join(f"--- node {m.node_id} ---\n{m.log_tail()}" for m in self.members)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One single-node server for the whole run (tests use paths of their own)."""
    cluster = Cluster(tmp_path_factory.mktemp("single"), 1)
    try:
        cluster.wait_for_leader()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def endpoint(server: Cluster) -> str:
    return server.endpoints[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-node cluster, for the module's tests (which may kill members)."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), 3)
    try:
        cluster.wait_for_leader()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def path() -> str:
    """A lock path no other test uses."""
    return f"/test/{uuid.uuid4().hex[:12]}"


def eventually(condition: object, timeout: float = 30.0, what: str = "the condition") -> None:
    """Waits (generously: a slow machine) until ``condition()`` is true."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)
