"""Start and stop the local Neo4j 5.26 Community server of ``tools/neo4j-server`` (no Docker) for tests and benchmarks.

``make neo4j`` builds it (Maven; the jars are cached in ``~/.m2``, a rebuild happens only when the pom or the Java
source changes). :class:`LocalNeo4j` runs it on free localhost ports with a fresh, empty database directory and a
random password, waits for the server's readiness line and a Bolt login, and on :meth:`stop` sends SIGTERM (a clean
shutdown), then deletes the directory. Used by the session fixture in ``tests/conftest.py`` and by ``bench/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_DIR = ROOT / "tools" / "neo4j-server"
JAR = SERVER_DIR / "target" / "circuitdb-neo4j-server-1.0.jar"
CLASSPATH = SERVER_DIR / "target" / "classpath.txt"
MAIN = "circuitdb.Neo4jServer"
READY = "circuitdb-neo4j ready"
#: small JVM: the machine is shared; C1 only starts the server in about half the time of the default JIT
JAVA_OPTS = os.environ.get("CIRCUITDB_NEO4J_JAVA_OPTS", "-Xms256m -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1")


class ServerUnavailable(RuntimeError):
    """The local server cannot be built or started here (no Java / Maven, a failed build, a start that failed)."""


def build(timeout: float = 900) -> None:
    """``make neo4j`` (a no-op when up to date); ServerUnavailable when Java or Maven is missing or the build fails."""
    missing = [tool for tool in ("java", "mvn", "make") if shutil.which(tool) is None]
    if missing:
        raise ServerUnavailable(f"cannot build the local Neo4j server: {', '.join(missing)} not found on PATH")
    done = subprocess.run(["make", "-s", "--no-print-directory", "neo4j"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0 or not CLASSPATH.exists():
        raise ServerUnavailable(f"make neo4j failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalNeo4j:
    """One server process. ``with LocalNeo4j() as srv: srv.uri, srv.user, srv.password``."""

    def __init__(self, *, password: str | None = None, java_opts: str = JAVA_OPTS) -> None:
        self.password = password or "test-" + secrets.token_hex(8)
        self.user = "neo4j"
        self.java_opts = java_opts.split()
        self.home: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.uri = self.http = ""
        self.start_seconds = float("nan")

    def env(self) -> dict[str, str]:
        """The variables circuitdb's Neo4j store reads."""
        return {"CIRCUITDB_NEO4J_URI": self.uri, "CIRCUITDB_NEO4J_USER": self.user,
                "CIRCUITDB_NEO4J_PASSWORD": self.password, "CIRCUITDB_NEO4J_HTTP": self.http}

    def start(self, timeout: float = 300) -> "LocalNeo4j":
        build()
        self.home = Path(tempfile.mkdtemp(prefix="circuitdb-neo4j-"))
        bolt, http = free_port(), free_port()
        cp = f"{JAR}:{CLASSPATH.read_text().strip()}"
        log = open(self.home / "server.out", "w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            ["java", *self.java_opts, "-cp", cp, MAIN, "--home", str(self.home), "--bolt-port", str(bolt),
             "--http-port", str(http)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "CIRCUITDB_NEO4J_PASSWORD": self.password})  # not on the command line (ps)
        log.close()
        out = self.home / "server.out"
        while READY not in out.read_text(errors="replace"):
            if self.proc.poll() is not None or time.perf_counter() - t0 > timeout:
                text = out.read_text(errors="replace")[-4000:]
                self.stop()
                raise ServerUnavailable(f"the local Neo4j server did not become ready in {timeout:.0f} s:\n{text}")
            time.sleep(0.25)
        self.uri, self.http = f"bolt://127.0.0.1:{bolt}", f"http://127.0.0.1:{http}"
        self._wait_for_login(t0 + timeout)
        self.start_seconds = time.perf_counter() - t0
        return self

    def _wait_for_login(self, deadline: float) -> None:
        import neo4j

        while True:
            try:
                with neo4j.GraphDatabase.driver(self.uri, auth=(self.user, self.password)) as d:
                    d.verify_connectivity()
                return
            except Exception as e:  # the server is up but Bolt may need a moment
                if time.perf_counter() > deadline:
                    self.stop()
                    raise ServerUnavailable(f"Bolt login to {self.uri} failed: {e}") from e
                time.sleep(0.25)

    def stop(self, timeout: float = 120) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def __enter__(self) -> "LocalNeo4j":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
