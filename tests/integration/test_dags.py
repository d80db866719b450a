"""Every DAG file in Airflow's own virtualenv: it imports without errors, defines a DAG, and does
no I/O while being imported (no sockets, no subprocesses, no files other than Python modules).

Needs no server, but Airflow's virtualenv (installed here exactly as `make up` installs it)."""
import json
import subprocess

import pytest

from infra.services.airflow import DAGS_FOLDER, airflow_bin, airflow_env, install_airflow

DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))

# Runs in Airflow's interpreter: import Airflow and let it build a throwaway DAG first (its own
# lazy imports read files; croniter even runs `file` once to learn the word size), then record
# every I/O audit event raised while the DAG file alone is imported.
IMPORT_PROBE = r"""
import importlib.util, json, sys
from airflow.sdk import DAG, CronTriggerTimetable, Param, dag, task

@dag(schedule=CronTriggerTimetable("0 3 * * 0", timezone="UTC"), params={"p": Param(1, type="integer")})
def warm_up():
    task(lambda: None, task_id="t")()
warm_up()

path = sys.argv[1]
events, recording = [], True
MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pth")

def hook(event, args):
    if not recording:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        name = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if name != path and not name.endswith(MODULE_SUFFIXES) and "__pycache__" not in name:
            events.append(f"open {name}")
    elif event.startswith(("socket.connect", "socket.bind", "subprocess.", "os.system", "os.exec",
                           "os.posix_spawn", "os.fork", "urllib.Request", "http.client.connect")):
        events.append(f"{event} {args!r}"[:200])

sys.addaudithook(hook)
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
recording = False
dags = [v.dag_id for v in vars(module).values() if isinstance(v, DAG)]
print(json.dumps({"io": events, "dags": dags}))
"""

DAGBAG_PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}))
"""


@pytest.fixture(scope="module")
def airflow_python(settings):
    install_airflow(settings)
    return airflow_bin(settings, "python")


def run_probe(settings, airflow_python, code, *args):
    result = subprocess.run([airflow_python, "-c", code, *args], env=airflow_env(settings), capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_there_are_dag_files():
    assert [p.name for p in DAG_FILES] == ["retrain_flight_delay.py"]


def test_airflow_loads_every_dag_file_without_import_errors(settings, airflow_python):
    bag = run_probe(settings, airflow_python, DAGBAG_PROBE, str(DAGS_FOLDER))
    assert bag["errors"] == {}
    assert "retrain_flight_delay" in bag["dags"]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_dag_file_defines_a_dag_and_does_no_io_at_import(settings, airflow_python, path):
    probe = run_probe(settings, airflow_python, IMPORT_PROBE, str(path))
    assert probe["dags"], f"{path.name} defines no DAG at module level"
    assert probe["io"] == [], f"{path.name} does I/O at import: {probe['io']}"


def test_the_import_probe_sees_io(settings, airflow_python, tmp_path):
    """The probe above can fail: a DAG file that reads a file and opens a socket is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text("import socket\nfrom airflow.sdk import DAG\nopen('/etc/hostname').read()\n"
                   "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\nexcept OSError:\n    pass\n"
                   "dag = DAG('bad')\n")
    probe = run_probe(settings, airflow_python, IMPORT_PROBE, str(bad))
    assert probe["dags"] == ["bad"]
    assert any(e.startswith("open /etc/hostname") for e in probe["io"])
    assert any(e.startswith("socket.connect") for e in probe["io"])


def test_airflow_lives_in_its_own_virtualenv(settings):
    """Neither environment can import the other's framework: the two dependency sets never mix."""
    platform = subprocess.run([str(settings.platform_python), "-c", "import airflow"], capture_output=True, check=False)
    assert platform.returncode != 0
    airflow_side = subprocess.run([airflow_bin(settings, "python"), "-c", "import pyspark"], capture_output=True,
                                  check=False)
    assert airflow_side.returncode != 0
