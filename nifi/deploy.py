"""Deploy the prediction-archive flow headlessly, and compare the running flow with it.

``nifi/flow.json`` is the flow as a NiFi flow definition (what "Download flow definition" in the UI
writes, and what "Upload flow definition" reads): reviewable like code. Before every start the
launcher renders it, with its parameters filled from Settings, into ``conf/flow.json.gz`` (NiFi's
own flow file, a VersionedDataflow) and writes the conf templates of ``nifi/conf``. NiFi loads the
flow at start and, with ``autoResumeState``, runs the processors the definition marks RUNNING.
Component ids are fixed in the definition, so FlowFiles queued before a restart find their
connections again.
"""
from __future__ import annotations

import copy
import gzip
import json
import logging
import secrets
import string
import time
from pathlib import Path

from flightdelay.config import Settings
from flightdelay.health import http_get

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
DEFINITION = HERE / "flow.json"
CONF_TEMPLATES = HERE / "conf"

# Every parameter of the definition's context, and the setting it comes from.
PARAMETERS = {
    "kafka.bootstrap.servers": lambda s: s.kafka_bootstrap,
    "kafka.topic": lambda s: s.response_topic,
    "kafka.group.id": lambda s: s.nifi_consumer_group,
    "archive.directory": lambda s: str(s.nifi_archive),
}


def load_definition(path: Path = DEFINITION) -> dict:
    return json.loads(path.read_text())


def fill_parameters(context: dict, s: Settings) -> dict:
    filled = copy.deepcopy(context)
    filled.setdefault("instanceIdentifier", filled["identifier"])
    for param in filled["parameters"]:
        if param["name"] not in PARAMETERS:
            raise ValueError(f"flow parameter {param['name']!r} has no setting in nifi/deploy.py PARAMETERS")
        param["value"] = PARAMETERS[param["name"]](s)
    return filled


def _place_in_group(group: dict) -> dict:
    """A flow definition leaves instance ids and group ids implicit; NiFi's flow file needs them."""
    gid = group["identifier"]
    group["instanceIdentifier"] = gid
    for kind in ("processors", "connections", "labels", "funnels", "inputPorts", "outputPorts", "controllerServices"):
        for component in group.get(kind, []):
            component.setdefault("instanceIdentifier", component["identifier"])
            component["groupIdentifier"] = gid
    for proc in group.get("processors", []):
        # NiFi's flow comparison at start-up needs a descriptor for every property it is given.
        proc.setdefault("propertyDescriptors", {
            name: {"name": name, "displayName": name, "identifiesControllerService": False, "sensitive": False}
            for name in proc["properties"]})
    for conn in group.get("connections", []):
        for end in ("source", "destination"):
            conn[end]["groupId"] = gid
        conn.setdefault("labelIndex", 1)
        conn.setdefault("zIndex", 0)
        conn.setdefault("backPressureObjectThreshold", group.get("defaultBackPressureObjectThreshold", 10000))
        conn.setdefault("backPressureDataSizeThreshold", group.get("defaultBackPressureDataSizeThreshold", "1 GB"))
        conn.setdefault("flowFileExpiration", "0 sec")
        conn.setdefault("prioritizers", [])
        conn.setdefault("loadBalanceStrategy", "DO_NOT_LOAD_BALANCE")
        conn.setdefault("loadBalanceCompression", "DO_NOT_COMPRESS")
        conn.setdefault("partitioningAttribute", "")
        conn.setdefault("componentType", "CONNECTION")
    for child in group.get("processGroups", []):
        _place_in_group(child)
    return group


def render_dataflow(s: Settings, definition: dict | None = None) -> dict:
    """The flow definition as NiFi's ``flow.json.gz`` content (its root group is the flow)."""
    definition = copy.deepcopy(definition or load_definition())
    contexts = [fill_parameters(ctx, s) for ctx in definition.get("parameterContexts", {}).values()]
    return {
        "encodingVersion": {"majorVersion": 2, "minorVersion": 0},
        "maxTimerDrivenThreadCount": 4,
        "registries": [],
        "parameterContexts": contexts,
        "parameterProviders": [],
        "controllerServices": [],
        "reportingTasks": [],
        "templates": [],
        "rootGroup": _place_in_group(definition["flowContents"]),
    }


def write_flow(s: Settings, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump(render_dataflow(s), out)


def sensitive_key(workdir: Path) -> str:
    """NiFi encrypts sensitive properties in its flow file with this key: drawn once per state dir."""
    path = workdir / "sensitive.key"
    if not path.exists():
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def write_conf(s: Settings, workdir: Path, *, lib: Path, extensions: Path, java: str) -> None:
    """Render ``nifi/conf/*`` into ``workdir/conf`` (``${name}`` placeholders; a missing value is an error)."""
    conf = workdir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    values = {"host": s.host, "port": s.nifi_port, "lib": lib, "extensions": extensions, "java": java,
              "heap": s.nifi_heap, "sensitive_key": sensitive_key(workdir)}
    for template in sorted(CONF_TEMPLATES.iterdir()):
        (conf / template.name).write_text(string.Template(template.read_text()).substitute(values))


# --- the running flow, through the REST API ---------------------------------------------------

def api(s: Settings, path: str, timeout: float = 5.0) -> dict:
    return json.loads(http_get(f"{s.nifi_url}/nifi-api{path}", timeout))


def running_processors(s: Settings) -> list[dict]:
    """The processors of the running root group: id, name, type, state, properties, schedule."""
    flow = api(s, "/flow/process-groups/root")["processGroupFlow"]["flow"]
    out = []
    for proc in flow["processors"]:
        comp = proc["component"]
        out.append({"id": comp["id"], "name": comp["name"], "type": comp["type"], "state": comp["state"],
                    "properties": comp["config"]["properties"],
                    "schedulingPeriod": comp["config"]["schedulingPeriod"],
                    "validationErrors": comp.get("validationErrors") or []})
    return out


def differences(s: Settings, definition: dict | None = None) -> list[str]:
    """What differs between the definition and the running flow: processors (by id) with their
    type, name, scheduling, and every property the definition sets (parameters resolved)."""
    definition = definition or load_definition()
    params = {p["name"]: p["value"] for ctx in render_dataflow(s, definition)["parameterContexts"]
              for p in ctx["parameters"]}
    running = {p["id"]: p for p in running_processors(s)}
    wanted = definition["flowContents"]["processors"]
    diffs = [f"unexpected processor {p['name']} ({p['type']})" for pid, p in running.items()
             if pid not in {w["identifier"] for w in wanted}]
    for want in wanted:
        have = running.get(want["identifier"])
        if have is None:
            diffs.append(f"processor {want['name']} ({want['type']}) is not in the running flow")
            continue
        for key in ("type", "name", "schedulingPeriod"):
            if have[key] != want[key]:
                diffs.append(f"{want['name']}: {key} is {have[key]!r}, the definition says {want[key]!r}")
        for prop, value in want["properties"].items():
            expected = resolve_parameters(value, params)
            actual = resolve_parameters(have["properties"].get(prop), params)
            if actual != expected:
                diffs.append(f"{want['name']}: property {prop!r} is {actual!r}, the definition says {expected!r}")
    return diffs


def resolve_parameters(value: str | None, params: dict[str, str]) -> str | None:
    if value is None:
        return None
    for name, param_value in params.items():
        value = value.replace(f"#{{{name}}}", str(param_value))
    return value


def wait_until_running(s: Settings, timeout: float = 120.0, definition: dict | None = None) -> list[dict]:
    """Wait until every processor of the definition runs; an invalid one fails at once."""
    definition = definition or load_definition()
    wanted = {p["identifier"]: p["name"] for p in definition["flowContents"]["processors"]
              if p.get("scheduledState") == "RUNNING"}
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            procs = {p["id"]: p for p in running_processors(s)}
        except Exception as exc:  # the flow endpoint answers 409/503 while the flow is loading
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(1)
            continue
        invalid = [f"{p['name']}: {'; '.join(p['validationErrors'])}" for pid, p in procs.items()
                   if pid in wanted and p["validationErrors"]]
        if invalid:
            raise RuntimeError("NiFi flow has invalid processors: " + " | ".join(invalid))
        waiting = [name for pid, name in wanted.items() if procs.get(pid, {}).get("state") != "RUNNING"]
        if not waiting:
            return list(procs.values())
        last = f"not running yet: {', '.join(waiting)}"
        time.sleep(1)
    raise RuntimeError(f"NiFi flow not running after {timeout:.0f} s ({last})")
