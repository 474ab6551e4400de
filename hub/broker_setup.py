"""What a local Kafka node needs before its JVM runs: Java, the broker jars, formatted storage.

Why apart from ``hub.broker``: these run once per machine (the jars, from Maven Central
into an ignored cache) or once per node (``kafka-storage format``), and each failure an
operator can fix is a one-line ``SetupError``; ``hub.broker`` runs and watches the nodes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hub.config import PROJECT_ROOT, Settings
from hub.errors import SetupError

if TYPE_CHECKING:
    from hub.broker import NodeLayout

__all__ = [
    "LOG4J2_CONFIG",
    "MIN_JAVA",
    "POM_FILE",
    "fetch_jars",
    "format_storage",
    "last_error",
    "meta_cluster_id",
    "require_java",
    "require_tool",
]

POM_FILE = PROJECT_ROOT / "deploy" / "local" / "pom.xml"
LOG4J2_CONFIG = PROJECT_ROOT / "deploy" / "local" / "log4j2.properties"
MIN_JAVA = 17

_KAFKA_JAR_GLOB = "kafka_2.13-*.jar"
_JAVA_HINT = "install OpenJDK 17+ (apt-get install openjdk-17-jre-headless)"
_MVN_HINT = "it is needed once to fetch the Kafka jars; install Maven (apt-get install maven)"


def require_tool(name: str, hint: str) -> str:
    """The full path of ``name`` on PATH, or a one-line SetupError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise SetupError(f"{name} not found on PATH: {hint}")
    return path


def _java_major(version_output: str) -> int | None:
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:  # "1.8.0_392"
        major = int(match.group(2))
    return major


def require_java() -> str:
    java = require_tool("java", _JAVA_HINT)
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{java} -version failed ({exc}): {_JAVA_HINT}") from None
    major = _java_major(done.stderr + done.stdout)
    if major is not None and major < MIN_JAVA:
        raise SetupError(f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA}+: {_JAVA_HINT}")
    return java


_ERROR_LINE = re.compile(r"\bERROR\b|^Error:|^Exception in thread|^\S+(Exception|Error): ")
_LOG_PREFIX = re.compile(r"^\[[^\]]+\]\s+ERROR\s+")


def last_error(lines: Sequence[str]) -> str | None:
    """The last ERROR line (plus the exception line under it, if any), shortened."""
    if lines and lines[0].startswith("=== placehub broker start"):
        lines = lines[1:]
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not _ERROR_LINE.search(line):
            continue
        message = _LOG_PREFIX.sub("", line)
        if i + 1 < len(lines):
            follow = lines[i + 1].strip()
            if re.match(r"^[\w.$]+(Exception|Error)\b", follow) and follow not in message:
                message = f"{message}: {follow}"
        return message if len(message) <= 300 else message[:297] + "..."
    return None


def fetch_jars(settings: Settings, *, progress: Callable[[str], None] = print) -> Path:
    """The folder with the Kafka broker jars, fetched with Maven the first time only."""
    cache = settings.jar_cache_dir.expanduser().absolute()
    libs = cache / "libs"
    if any(libs.glob(_KAFKA_JAR_GLOB)):
        return libs
    mvn = require_tool("mvn", _MVN_HINT)
    cache.mkdir(parents=True, exist_ok=True)
    # Fetch into a scratch folder and rename it, so an interrupted fetch never looks complete.
    for stale in cache.glob("libs.partial-*"):
        if time.time() - _mtime(stale) > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=cache))
    progress(f"fetching the Kafka broker jars with Maven into {libs} (once)...")
    try:
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM_FILE),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={scratch}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not any(scratch.glob(_KAFKA_JAR_GLOB)):
            output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
            errors = [line for line in output if "[ERROR]" in line] or output
            detail = re.sub(r"\x1b\[[0-9;]*m", "", errors[0]).strip() if errors else "no output"
            raise SetupError(
                f"mvn could not fetch the Kafka jars (exit {done.returncode}): {detail[:300]}; "
                f"check network access to Maven Central, then run `placehub broker start` again"
            )
        if libs.exists() and not any(libs.glob(_KAFKA_JAR_GLOB)):
            shutil.rmtree(libs)  # an empty or foreign folder in the way
        try:
            scratch.rename(libs)
        except OSError:
            if not any(libs.glob(_KAFKA_JAR_GLOB)):  # else a concurrent fetch won the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    progress(f"fetched {sum(1 for _ in libs.glob('*.jar'))} jars")
    return libs


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def meta_cluster_id(node_dir: Path) -> str | None:
    try:
        text = (node_dir / "data" / "meta.properties").read_text()
    except OSError:
        return None
    match = re.search(r"^cluster\.id=(\S+)", text, re.MULTILINE)
    return match.group(1) if match else ""


def format_storage(
    layout: Sequence[NodeLayout],
    cluster_id: str,
    java: str,
    libs: Path,
    progress: Callable[[str], None],
    extra_args: Sequence[str] = (),
) -> None:
    """Format KRaft storage of the nodes that have no meta.properties yet, in parallel
    (``extra_args``: the secured cluster's ``--add-scram`` users)."""
    todo = [node for node in layout if not (node.data_dir / "meta.properties").exists()]
    if not todo:
        return
    progress(f"formatting KRaft storage (cluster id {cluster_id}) in {todo[0].dir.parent}")
    running: list[tuple[NodeLayout, subprocess.Popen[str]]] = []
    for node in todo:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={node.dir}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node.properties_file),
            *extra_args,
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=node.dir,
        )
        running.append((node, proc))
    failures: list[str] = []
    for node, proc in running:
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        if proc.returncode != 0:
            lines = [line for line in output.splitlines() if line.strip()]
            detail = last_error(lines) or (lines[-1] if lines else f"exit {proc.returncode}")
            failures.append(f"node {node.node_id}: {detail}")
    if failures:
        raise SetupError(
            f"formatting KRaft storage under {layout[0].dir.parent} failed: {'; '.join(failures)}"
        )
