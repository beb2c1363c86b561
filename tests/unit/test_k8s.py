"""deploy/k8s/, checked against the service and against itself.

No cluster runs here or in CI, so the manifests are checked by reading them: a misspelt
setting (which the service would silently ignore), a probe on the wrong port, a selector
that matches no pod, a secret in the ConfigMap or a root container fails here instead of
in a rollout. The Secret is not shipped (so that no apply installs placeholders): its keys
are checked in examples/secret.example.yaml and in the README's `kubectl create secret`.
Expected values come from their sources (tests/unit/deploy_sources.py): the settings
model, pyproject.toml, the Dockerfile and the web routes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from service.config import ENV_PREFIX, Settings, token_problem
from tests.unit import deploy_sources as sources
from tests.unit.deploy_sources import ROOT, WORKER_COMMAND, field_of, variable_of

K8S_DIR = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
K8S_README = K8S_DIR / "README.md"
# A sample of the Secret the operator creates; in a subdirectory, which neither
# `kubectl apply -k deploy/k8s` nor `kubectl apply -f deploy/k8s` reads.
SECRET_EXAMPLE = K8S_DIR / "examples" / "secret.example.yaml"
# Values that mark a placeholder rather than a setting: nothing shipped may hold one.
PLACEHOLDER = re.compile(
    r"change[-_ ]?me|replace[-_ ]?me|placeholder|to[-_ ]?do|<[^>]*>|^x{3,}$|^\.\.\.$",
    re.IGNORECASE,
)
# Where the worker resolves the names of Kafka and Redis.
DNS_PORTS = {(53, "UDP"), (53, "TCP")}

# Kinds that live in a namespace; everything else here (the Namespace) is cluster-wide.
CLUSTER_SCOPED = {"Namespace"}
EXPECTED_KINDS = {
    "Namespace",
    "ConfigMap",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# What the downward API gives MEDIA_WEB_HOST in a pod, for building Settings here.
SAMPLE_POD_IP = "10.244.1.17"
# The Secret's MEDIA_API_TOKEN is a value to replace: the service refuses a placeholder (or
# an empty or short token), so the tests build settings with this one in its place.
SAMPLE_API_TOKEN = "sample-token-for-the-manifest-tests-0123456789"
# Optional secrets the Secret need not list: unset, /metrics stays open on the pod network.
# Secrets the service can run without: /metrics open, or a Kafka or Redis without a login
# or encrypted client key (deploy/k8s/README.md shows when to add them).
OPTIONAL_SECRETS = {
    "MEDIA_METRICS_TOKEN",
    "MEDIA_KAFKA_SASL_PASSWORD",
    "MEDIA_KAFKA_SSL_KEY_PASSWORD",
    "MEDIA_REDIS_PASSWORD",
    "MEDIA_REDIS_SSL_KEY_PASSWORD",
}

Manifest = dict[str, Any]


# --- reading the files ---------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(
        path
        for path in K8S_DIR.iterdir()
        if path.suffix in {".yaml", ".yml"} and path.name != KUSTOMIZATION.name
    )


@pytest.fixture(scope="module")
def manifests() -> list[tuple[str, Manifest]]:
    """(file name, object) for every object of every manifest file."""
    files = _manifest_files()
    assert files, f"no manifests in {K8S_DIR}"
    found: list[tuple[str, Manifest]] = []
    for path in files:
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            pytest.fail(f"{path.name} is not valid YAML:\n{exc}")
        objects = [doc for doc in documents if doc is not None]
        assert objects, f"{path.name} holds no object"
        for obj in objects:
            assert isinstance(obj, dict), f"{path.name}: a document is not a mapping: {obj!r}"
            found.append((path.name, obj))
    return found


def _one(manifests: list[tuple[str, Manifest]], kind: str) -> Manifest:
    matching = [obj for _, obj in manifests if obj.get("kind") == kind]
    assert len(matching) == 1, f"expected exactly one {kind} in {K8S_DIR}, found {len(matching)}"
    return matching[0]


@pytest.fixture(scope="module")
def configmap(manifests: list[tuple[str, Manifest]]) -> dict[str, str]:
    data = _one(manifests, "ConfigMap").get("data")
    assert isinstance(data, dict) and data, "the ConfigMap has no `data`"
    for key, value in data.items():
        assert isinstance(value, str), (
            f"ConfigMap: {key} is {value!r} ({type(value).__name__}); ConfigMap values must "
            'be strings: quote them ("8", "true")'
        )
    return data


@pytest.fixture(scope="module")
def secret_example() -> Manifest:
    assert SECRET_EXAMPLE.is_file(), f"{SECRET_EXAMPLE} is missing"
    obj = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert isinstance(obj, dict) and obj.get("kind") == "Secret", (
        f"{SECRET_EXAMPLE.name} is not a Secret"
    )
    return obj


@pytest.fixture(scope="module")
def secret(secret_example: Manifest) -> dict[str, str]:
    """The keys and sample values of the Secret the operator creates."""
    obj = secret_example
    assert "data" not in obj, "Secret: use `stringData` (readable placeholders), not `data`"
    data = obj.get("stringData")
    assert isinstance(data, dict) and data, "the Secret has no `stringData`"
    for key, value in data.items():
        assert isinstance(value, str), f"Secret: {key} is not a string: {value!r}"
    return data


@pytest.fixture(scope="module")
def deployment(manifests: list[tuple[str, Manifest]]) -> Manifest:
    return _one(manifests, "Deployment")


@pytest.fixture(scope="module")
def pod_spec(deployment: Manifest) -> Manifest:
    spec = deployment["spec"]["template"].get("spec")
    assert isinstance(spec, dict), "Deployment: spec.template.spec is missing"
    return spec


@pytest.fixture(scope="module")
def container(pod_spec: Manifest) -> Manifest:
    containers = pod_spec.get("containers") or []
    assert len(containers) == 1, f"Deployment: expected one container, found {len(containers)}"
    found: Manifest = containers[0]
    return found


def _secret_variables() -> set[str]:
    """The variables of fields typed SecretStr (alone or optional): they belong in the Secret."""
    return {
        variable_of(name)
        for name, info in Settings.model_fields.items()
        if info.annotation is SecretStr or SecretStr in get_args(info.annotation)
    }


def _validate(values: dict[str, str]) -> Settings:
    """Settings from explicit values (which win over the environment); no .env file."""
    return Settings.model_validate({**values, "_env_file": None})


def _container_env(container: Manifest) -> dict[str, Manifest]:
    env = container.get("env") or []
    names = [item["name"] for item in env]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"Deployment: env sets {sorted(duplicates)} more than once"
    return {item["name"]: item for item in env}


def _secret_name(container: Manifest) -> str:
    refs = [e["secretRef"]["name"] for e in container.get("envFrom") or [] if "secretRef" in e]
    assert len(refs) == 1, f"Deployment: expected one envFrom secretRef, found {refs}"
    return str(refs[0])


def _web_port(configmap: dict[str, str]) -> int:
    """The port the worker's web server listens on: the ConfigMap's, else the default."""
    return int(sources.effective(configmap, "web_port"))


def _named_port(container: Manifest, name: str) -> int:
    ports = {p.get("name"): p for p in container.get("ports") or []}
    assert name in ports, f"Deployment: the container has no port named {name!r}: {ports}"
    return int(ports[name]["containerPort"])


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def _cpu(quantity: object) -> float:
    match = _CPU.match(str(quantity))
    assert match, f"cannot read the CPU quantity {quantity!r} (expected e.g. 250m or 1)"
    return float(match[1]) / (1000 if match[2] else 1)


def _memory(quantity: object) -> float:
    match = _MEMORY.match(str(quantity))
    assert match, f"cannot read the memory quantity {quantity!r} (expected e.g. 512Mi)"
    return float(match[1]) * _MEMORY_UNITS[match[2]]


# --- every object ---------------------------------------------------------------------


def test_every_object_is_well_formed(manifests: list[tuple[str, Manifest]]) -> None:
    for name, obj in manifests:
        for key in ("apiVersion", "kind"):
            assert obj.get(key), f"{name}: an object has no {key}: {obj}"
        metadata = obj.get("metadata")
        assert isinstance(metadata, dict) and metadata.get("name"), (
            f"{name}: {obj['kind']} has no metadata.name"
        )


def test_the_expected_kinds_are_there(manifests: list[tuple[str, Manifest]]) -> None:
    kinds = [obj["kind"] for _, obj in manifests]
    missing = EXPECTED_KINDS - set(kinds)
    assert not missing, f"{K8S_DIR.name}: no {sorted(missing)} among the manifests"
    for kind in EXPECTED_KINDS:
        assert kinds.count(kind) == 1, f"{kind} is defined {kinds.count(kind)} times"


def _namespace(manifests: list[tuple[str, Manifest]]) -> str:
    """The name of the Namespace the manifests create."""
    return str(_one(manifests, "Namespace")["metadata"]["name"])


def test_everything_is_in_the_namespace(manifests: list[tuple[str, Manifest]]) -> None:
    namespace = _namespace(manifests)
    for name, obj in manifests:
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        found = obj["metadata"].get("namespace")
        assert found == namespace, (
            f"{name}: {obj['kind']} {obj['metadata']['name']} is in namespace {found!r}, not "
            f"in the Namespace {namespace!r} that namespace.yaml creates"
        )


def test_kustomization_lists_every_manifest(manifests: list[tuple[str, Manifest]]) -> None:
    assert KUSTOMIZATION.exists(), f"{KUSTOMIZATION} is missing (kubectl apply -k needs it)"
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization.get("kind") == "Kustomization", "kustomization.yaml: kind is wrong"
    resources = kustomization.get("resources") or []
    duplicates = {r for r in resources if resources.count(r) > 1}
    assert not duplicates, f"kustomization.yaml lists {sorted(duplicates)} more than once"
    files = {path.name for path in _manifest_files()}
    unlisted = files - set(resources)
    assert not unlisted, (
        f"kustomization.yaml does not list {sorted(unlisted)}: `kubectl apply -k` would skip them"
    )
    missing = set(resources) - files
    assert not missing, f"kustomization.yaml lists {sorted(missing)}, which do not exist"
    namespace = kustomization.get("namespace")
    created = _namespace(manifests)
    assert namespace in (None, created), (
        f"kustomization.yaml moves everything to namespace {namespace!r}, not to the "
        f"Namespace {created!r} that namespace.yaml creates"
    )


# --- settings -------------------------------------------------------------------------


def _media_variables(
    configmap: dict[str, str], secret: dict[str, str], container: Manifest
) -> list[tuple[str, str]]:
    """(where, variable) for every MEDIA_* name the pod gets."""
    found = [("ConfigMap", key) for key in configmap]
    found += [("Secret", key) for key in secret]
    found += [("Deployment env", key) for key in _container_env(container)]
    return found


def test_every_variable_is_a_setting(
    configmap: dict[str, str], secret: dict[str, str], container: Manifest
) -> None:
    for where, variable in _media_variables(configmap, secret, container):
        assert variable.startswith(ENV_PREFIX), (
            f"{where}: {variable} lacks the {ENV_PREFIX} prefix, so the service ignores it"
        )
        known = field_of(variable) in Settings.model_fields
        assert known, (
            f"{where}: {variable} is no setting: service.config.Settings has no field "
            f"{field_of(variable)!r}, so the service would silently ignore it"
        )


def test_configmap_values_are_valid_settings(configmap: dict[str, str]) -> None:
    values = {field_of(key): value for key, value in configmap.items()}
    for field, value in values.items():
        try:
            _validate({field: value})
        except ValidationError as exc:
            pytest.fail(f"ConfigMap: {ENV_PREFIX}{field.upper()}={value!r} is invalid:\n{exc}")
    try:
        _validate(values)
    except ValidationError as exc:
        pytest.fail(f"ConfigMap: the settings together are invalid:\n{exc}")


def _filled_in(secret: dict[str, str]) -> dict[str, str]:
    """The Secret as an operator completes it: a real API token instead of the sample."""
    token = secret.get("MEDIA_API_TOKEN")
    if token is None or token_problem(token) is None:
        return secret  # no token, or one the service accepts: checked as it is
    return {**secret, "MEDIA_API_TOKEN": SAMPLE_API_TOKEN}


def test_secret_values_are_valid_settings(secret: dict[str, str]) -> None:
    for key, value in _filled_in(secret).items():
        try:
            _validate({field_of(key): value})
        except ValidationError as exc:
            pytest.fail(f"Secret: {key} is invalid:\n{exc}")


def test_the_pod_environment_builds_settings(
    configmap: dict[str, str],
    secret: dict[str, str],
    container: Manifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All variables together, read from the environment as the pod does it."""
    environment = {**configmap, **_filled_in(secret)}
    for name, item in _container_env(container).items():
        if "value" in item:
            environment[name] = str(item["value"])
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
            environment[name] = SAMPLE_POD_IP
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings(_env_file=None)
    except ValidationError as exc:
        pytest.fail(f"the pod's {ENV_PREFIX}* environment is invalid:\n{exc}")
    assert settings.web_host == SAMPLE_POD_IP, "MEDIA_WEB_HOST did not reach the settings"


def test_secrets_are_only_in_the_secret(
    configmap: dict[str, str], secret: dict[str, str], container: Manifest
) -> None:
    secret_variables = _secret_variables()
    leaked = sorted(secret_variables & set(configmap))
    assert not leaked, f"ConfigMap holds {leaked}: secrets belong in the Secret"
    for name, item in _container_env(container).items():
        assert not (name in secret_variables and "value" in item), (
            f"Deployment: {name} is written into the pod spec; take it from the Secret"
        )
    missing = sorted(secret_variables - OPTIONAL_SECRETS - set(secret))
    assert not missing, f"the Secret lacks {missing}"


def test_envfrom_names_the_configmap_and_secret(
    manifests: list[tuple[str, Manifest]], container: Manifest
) -> None:
    config_refs = [
        e["configMapRef"]["name"] for e in container.get("envFrom") or [] if "configMapRef" in e
    ]
    configmap_name = _one(manifests, "ConfigMap")["metadata"]["name"]
    assert config_refs == [configmap_name], (
        f"Deployment: envFrom configMapRef {config_refs}, expected [{configmap_name!r}]"
    )
    secret_name = yaml.safe_load(SECRET_EXAMPLE.read_text())["metadata"]["name"]
    assert _secret_name(container) == secret_name, (
        f"Deployment: envFrom secretRef {_secret_name(container)!r}, expected {secret_name!r}"
    )


def test_web_host_is_the_pod_ip(configmap: dict[str, str], container: Manifest) -> None:
    assert "MEDIA_WEB_HOST" not in configmap, (
        "ConfigMap: MEDIA_WEB_HOST is per pod (its IP), it cannot be shared"
    )
    item = _container_env(container).get("MEDIA_WEB_HOST")
    assert item, "Deployment: MEDIA_WEB_HOST is not set (the worker would advertise 127.0.0.1)"
    path = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    assert path == "status.podIP", (
        f"Deployment: MEDIA_WEB_HOST comes from {path!r}, expected the downward API's status.podIP"
    )


def test_web_bind_is_reachable_from_outside_the_pod(configmap: dict[str, str]) -> None:
    bind = configmap.get("MEDIA_WEB_BIND", str(Settings.model_fields["web_bind"].default))
    assert bind not in LOOPBACK, (
        f"ConfigMap: MEDIA_WEB_BIND={bind} listens on loopback only: probes, the Service and "
        "Prometheus could not reach it (use 0.0.0.0)"
    )


def test_replicas_do_not_exceed_the_partitions(
    deployment: Manifest, configmap: dict[str, str]
) -> None:
    replicas = int(deployment["spec"].get("replicas", 1))
    default = Settings.model_fields["topic_partitions"].default
    partitions = int(configmap.get("MEDIA_TOPIC_PARTITIONS", default))
    assert replicas <= partitions, (
        f"Deployment: {replicas} replicas for {partitions} partitions: "
        f"{replicas - partitions} worker(s) would get no partition and sit idle"
    )


# --- the workload ---------------------------------------------------------------------


def test_selectors_match_the_pods(
    manifests: list[tuple[str, Manifest]], deployment: Manifest
) -> None:
    labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    selector = deployment["spec"].get("selector", {}).get("matchLabels") or {}
    assert selector, "Deployment: spec.selector.matchLabels is empty"
    assert selector.items() <= labels.items(), (
        f"Deployment: selector {selector} does not match the pod template's labels {labels}"
    )
    service_selector = _one(manifests, "Service")["spec"].get("selector") or {}
    assert service_selector, "Service: no selector, so it has no endpoints"
    assert service_selector.items() <= labels.items(), (
        f"Service: selector {service_selector} matches no pod (pod labels: {labels})"
    )
    pdb = _one(manifests, "PodDisruptionBudget")
    pdb_selector = pdb["spec"].get("selector", {}).get("matchLabels") or {}
    assert pdb_selector and pdb_selector.items() <= labels.items(), (
        f"PodDisruptionBudget: selector {pdb_selector} matches no pod (pod labels: {labels})"
    )


def test_ports_line_up(
    manifests: list[tuple[str, Manifest]],
    deployment: Manifest,
    container: Manifest,
    configmap: dict[str, str],
) -> None:
    web_port = _web_port(configmap)
    exposed = sources.exposed_ports()
    assert web_port in exposed, (
        f"MEDIA_WEB_PORT is {web_port}, but the image EXPOSEs {sorted(exposed)} (Dockerfile)"
    )
    container_port = _named_port(container, "http")
    assert container_port == web_port, (
        f"Deployment: container port http is {container_port}, but MEDIA_WEB_PORT is {web_port}"
    )
    ports = _one(manifests, "Service")["spec"].get("ports") or []
    http = [p for p in ports if p.get("name") == "http"]
    assert http, f"Service: no port named http: {ports}"
    target = http[0].get("targetPort", http[0].get("port"))
    assert target in ("http", web_port), (
        f"Service: port http targets {target!r}, expected the container port http ({web_port})"
    )
    assert int(http[0]["port"]) == web_port, (
        f"Service: port http is {http[0]['port']}, expected {web_port}"
    )
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert annotations.get("prometheus.io/scrape") == "true", (
        "Deployment: the pod template lacks the annotation prometheus.io/scrape: 'true'"
    )
    assert annotations.get("prometheus.io/port") == str(web_port), (
        f"Deployment: prometheus.io/port is {annotations.get('prometheus.io/port')!r}, "
        f"expected {str(web_port)!r}"
    )
    metrics_path = sources.route_of("MetricsView")
    assert annotations.get("prometheus.io/path") == metrics_path, (
        f"Deployment: prometheus.io/path is {annotations.get('prometheus.io/path')!r}, "
        f"but the service serves its metrics at {metrics_path!r}"
    )


# Liveness never asks readiness: a Kafka or Redis outage would restart every pod at once.
@pytest.mark.parametrize(
    ("probe", "view"),
    [
        ("livenessProbe", "HealthView"),
        ("readinessProbe", "ReadyView"),
        ("startupProbe", "HealthView"),
    ],
)
def test_probes_ask_the_health_routes(
    container: Manifest, configmap: dict[str, str], probe: str, view: str
) -> None:
    path = sources.route_of(view)
    spec = container.get(probe)
    assert spec, f"Deployment: the container has no {probe}"
    http_get = spec.get("httpGet")
    assert http_get, f"Deployment: {probe} is not an httpGet probe"
    assert http_get.get("path") == path, (
        f"Deployment: {probe} asks {http_get.get('path')!r}, expected {path!r}"
    )
    port = http_get.get("port")
    assert port == "http", (
        f"Deployment: {probe} uses port {port!r}; use the named port `http` so it follows "
        "the container port"
    )
    assert _named_port(container, "http") == _web_port(configmap)


def test_the_image_runs_the_worker(container: Manifest) -> None:
    # The name `docker build -t` gives the image in deploy/k8s/README.md: project:version.
    expected = sources.image_reference()
    assert container.get("image") == expected, (
        f"Deployment: image is {container.get('image')!r}, but this version of the service "
        f"builds {expected} (pyproject.toml's name and version)"
    )
    assert "command" not in container, (
        "Deployment: `command` replaces the image's ENTRYPOINT (the `service` script); "
        "set `args` only"
    )
    args = container.get("args", sources.exec_form("CMD"))
    assert args == WORKER_COMMAND and sources.cli_accepts(args), (
        f"Deployment: args are {args!r}, expected the worker command {WORKER_COMMAND}"
    )


def test_version_labels_follow_the_project(
    manifests: list[tuple[str, Manifest]], deployment: Manifest
) -> None:
    version = sources.project()["version"]
    labelled = [
        (f"{name}: {obj['kind']}", obj["metadata"].get("labels") or {}) for name, obj in manifests
    ]
    labelled.append(("the pod template", deployment["spec"]["template"]["metadata"]["labels"]))
    for where, labels in labelled:
        found = labels.get("app.kubernetes.io/version", version)
        assert found == version, (
            f"{where} is labelled app.kubernetes.io/version {found!r}, but the service is "
            f"{version} (pyproject.toml)"
        )


def test_resources_are_set(container: Manifest) -> None:
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert resource in (resources.get(kind) or {}), (
                f"Deployment: resources.{kind}.{resource} is not set"
            )
    requests, limits = resources["requests"], resources["limits"]
    assert _cpu(requests["cpu"]) <= _cpu(limits["cpu"]), (
        f"Deployment: CPU request {requests['cpu']} exceeds the limit {limits['cpu']}"
    )
    assert _memory(requests["memory"]) <= _memory(limits["memory"]), (
        f"Deployment: memory request {requests['memory']} exceeds the limit {limits['memory']}"
    )


def test_runs_as_non_root_with_a_read_only_root(pod_spec: Manifest, container: Manifest) -> None:
    pod = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    effective = {**pod, **own}  # the container's settings win
    assert effective.get("runAsNonRoot") is True, "Deployment: runAsNonRoot is not true"
    uid, gid = sources.image_user()
    user = effective.get("runAsUser")
    assert user == uid, f"Deployment: runAsUser is {user!r}, the image's user is {uid}"
    for key in ("runAsGroup", "fsGroup"):
        group = effective.get(key)
        assert group is None or group == gid, (
            f"Deployment: {key} is {group!r}, the image's group is {gid}"
        )
    assert own.get("allowPrivilegeEscalation") is False, (
        "Deployment: the container's allowPrivilegeEscalation is not false"
    )
    assert own.get("readOnlyRootFilesystem") is True, (
        "Deployment: the container's readOnlyRootFilesystem is not true"
    )
    dropped = (own.get("capabilities") or {}).get("drop") or []
    assert "ALL" in dropped, f"Deployment: capabilities drop {dropped}, expected ['ALL']"
    assert not (own.get("capabilities") or {}).get("add"), "Deployment: capabilities are added"
    assert own.get("privileged") is not True, "Deployment: the container is privileged"


def test_data_dir_is_writable(
    pod_spec: Manifest, container: Manifest, configmap: dict[str, str]
) -> None:
    """The root filesystem is read-only: MEDIA_DATA_DIR must be a mounted volume."""
    data_dir = configmap.get("MEDIA_DATA_DIR")
    assert data_dir, "ConfigMap: MEDIA_DATA_DIR is not set"
    assert data_dir.startswith("/"), f"ConfigMap: MEDIA_DATA_DIR {data_dir!r} is not absolute"
    mounts = {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts") or []}
    covering = [
        mounts[path] for path in mounts if data_dir == path or data_dir.startswith(path + "/")
    ]
    assert covering, (
        f"Deployment: MEDIA_DATA_DIR={data_dir} is on the read-only root filesystem; mount a "
        f"volume there (mounts: {sorted(mounts)})"
    )
    mount = covering[0]
    assert not mount.get("readOnly"), f"Deployment: the volume at {data_dir} is read-only"
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    assert mount["name"] in volumes, f"Deployment: volume {mount['name']!r} is not defined"
    assert "emptyDir" in volumes[mount["name"]], (
        f"Deployment: volume {mount['name']!r} at {data_dir} should be an emptyDir"
    )


def test_pod_lifecycle(pod_spec: Manifest, deployment: Manifest) -> None:
    grace = pod_spec.get("terminationGracePeriodSeconds")
    assert isinstance(grace, int) and grace >= 30, (
        f"Deployment: terminationGracePeriodSeconds is {grace!r}; the worker needs time to "
        "stop its agents and commit offsets (expected at least 30)"
    )
    assert pod_spec.get("enableServiceLinks") is False, (
        "Deployment: enableServiceLinks is not false: Kubernetes would add variables such as "
        "MEDIA_INTELLIGENCE_PORT, which share the settings' MEDIA_ prefix"
    )
    assert int(deployment["spec"].get("replicas", 1)) >= 2, (
        "Deployment: fewer than 2 replicas; one worker down would stop processing"
    )


def test_disruption_budget_keeps_workers_running(
    manifests: list[tuple[str, Manifest]], deployment: Manifest
) -> None:
    spec = _one(manifests, "PodDisruptionBudget")["spec"]
    assert "minAvailable" not in spec, "PodDisruptionBudget: set maxUnavailable, not both"
    unavailable = spec.get("maxUnavailable")
    replicas = int(deployment["spec"].get("replicas", 1))
    assert isinstance(unavailable, int), (
        f"PodDisruptionBudget: maxUnavailable is {unavailable!r}; give a number of pods"
    )
    assert 1 <= unavailable < replicas, (
        f"PodDisruptionBudget: maxUnavailable {unavailable} of {replicas} replicas: a drain "
        "would either be blocked or could stop every worker"
    )


def test_service_is_cluster_internal(manifests: list[tuple[str, Manifest]]) -> None:
    spec = _one(manifests, "Service")["spec"]
    kind = spec.get("type", "ClusterIP")
    assert kind == "ClusterIP", f"Service: type {kind}, expected ClusterIP"


# --- the Secret, created out of band ----------------------------------------------------


def _leaves(value: Any) -> list[str]:
    """Every scalar in a manifest, as a string."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [] if value is None else [str(value)]


def test_no_secret_and_no_placeholder_is_shipped(manifests: list[tuple[str, Manifest]]) -> None:
    """`kubectl apply -k` or `-f deploy/k8s` must not install (or restore) fake credentials."""
    shipped = [(name, obj) for name, obj in manifests if obj["kind"] == "Secret"]
    assert not shipped, (
        f"{[name for name, _ in shipped]} ship a Secret: every apply would write its values "
        "over the real ones; document `kubectl create secret generic` instead"
    )
    for name, obj in manifests:
        for leaf in _leaves(obj):
            assert not PLACEHOLDER.search(leaf), (
                f"{name}: {obj['kind']} holds the placeholder value {leaf!r}"
            )
    resources = yaml.safe_load(KUSTOMIZATION.read_text()).get("resources") or []
    example = SECRET_EXAMPLE.relative_to(K8S_DIR).as_posix()
    assert example not in resources, f"kustomization.yaml applies the sample {example}"
    assert SECRET_EXAMPLE.parent != K8S_DIR, (
        f"{SECRET_EXAMPLE.name} is in {K8S_DIR.name}/, which `kubectl apply -f` applies whole"
    )


def test_secret_example_is_the_one_the_deployment_reads(
    manifests: list[tuple[str, Manifest]], secret_example: Manifest, container: Manifest
) -> None:
    metadata = secret_example["metadata"]
    assert metadata.get("name") == _secret_name(container), (
        f"{SECRET_EXAMPLE.name}: named {metadata.get('name')!r}, the Deployment reads "
        f"{_secret_name(container)!r}"
    )
    assert metadata.get("namespace") == _namespace(manifests), (
        f"{SECRET_EXAMPLE.name}: in namespace {metadata.get('namespace')!r}"
    )


def test_readme_creates_the_secret_the_deployment_reads(
    manifests: list[tuple[str, Manifest]], secret: dict[str, str], container: Manifest
) -> None:
    text = K8S_README.read_text().replace("\\\n", " ")
    commands = [
        line for line in text.splitlines() if "kubectl" in line and "create secret generic" in line
    ]
    assert commands, f"{K8S_README.name} does not show `kubectl create secret generic`"
    command = commands[0].split()
    name = command[command.index("generic") + 1]
    assert name == _secret_name(container), (
        f"{K8S_README.name}: creates the Secret {name!r}, the Deployment reads "
        f"{_secret_name(container)!r}"
    )
    namespace = _namespace(manifests)
    assert f"-n {namespace}" in commands[0] or f"--namespace={namespace}" in commands[0], (
        f"{K8S_README.name}: the Secret is not created in the namespace {namespace}"
    )
    for key in secret:
        assert f"--from-literal={key}=" in commands[0], (
            f"{K8S_README.name}: `kubectl create secret generic` does not set {key}"
        )


# --- the network policy -----------------------------------------------------------------


def _policy_ports(rules: list[Manifest], direction: str) -> set[tuple[int | str, str]]:
    """(port, protocol) allowed by a list of ingress or egress rules; each rule must name ports."""
    allowed: set[tuple[int | str, str]] = set()
    for rule in rules:
        ports = rule.get("ports") or []
        assert ports, f"NetworkPolicy: an {direction} rule names no port, so it allows every port"
        for port in ports:
            assert "endPort" not in port, f"NetworkPolicy: {direction} allows a port range {port}"
            assert "port" in port, f"NetworkPolicy: {direction} rule {port} allows every port"
            allowed.add((port["port"], port.get("protocol", "TCP")))
    return allowed


@pytest.fixture(scope="module")
def network_policy(manifests: list[tuple[str, Manifest]]) -> Manifest:
    spec: Manifest = _one(manifests, "NetworkPolicy")["spec"]
    return spec


def test_network_policy_selects_the_workers(network_policy: Manifest, deployment: Manifest) -> None:
    labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    selector = network_policy.get("podSelector") or {}
    assert not selector.get("matchExpressions"), "NetworkPolicy: use matchLabels only"
    match = selector.get("matchLabels") or {}
    assert match, "NetworkPolicy: an empty podSelector selects every pod of the namespace"
    assert match.items() <= labels.items(), (
        f"NetworkPolicy: podSelector {match} does not select the workers (labels {labels})"
    )
    types = set(network_policy.get("policyTypes") or [])
    assert types == {"Ingress", "Egress"}, (
        f"NetworkPolicy: policyTypes {sorted(types)}; both Ingress and Egress must be restricted"
    )


def test_network_policy_lets_in_only_the_api_port(
    network_policy: Manifest, container: Manifest, configmap: dict[str, str]
) -> None:
    port = _named_port(container, "http")
    assert port == _web_port(configmap), "the container port http is not MEDIA_WEB_PORT"
    allowed = _policy_ports(network_policy.get("ingress") or [], "ingress")
    assert allowed, "NetworkPolicy: no ingress rule: probes, the Service and Prometheus fail"
    assert allowed <= {(port, "TCP"), ("http", "TCP")}, (
        f"NetworkPolicy: ingress allows {sorted(allowed, key=str)}; only the API port "
        f"{port}/TCP (container port http)"
    )


def test_network_policy_lets_out_only_kafka_redis_and_dns(
    network_policy: Manifest, configmap: dict[str, str], secret: dict[str, str]
) -> None:
    bootstrap = sources.effective(configmap, "kafka_bootstrap_servers")
    kafka = {(int(server.rpartition(":")[2]), "TCP") for server in bootstrap.split(",")}
    redis_url = urlsplit(secret["MEDIA_REDIS_URL"])
    redis = {(redis_url.port or 6379, "TCP")}
    expected = kafka | redis | DNS_PORTS
    allowed = _policy_ports(network_policy.get("egress") or [], "egress")
    assert allowed == expected, (
        f"NetworkPolicy: egress allows {sorted(allowed, key=str)}, expected Kafka {sorted(kafka)} "
        f"(MEDIA_KAFKA_BOOTSTRAP_SERVERS), Redis {sorted(redis)} (MEDIA_REDIS_URL) and DNS"
    )
    readme = K8S_README.read_text()
    for port, protocol in sorted(expected, key=str):
        assert f"{port}/{protocol}" in readme, (
            f"{K8S_README.name} does not document the egress port {port}/{protocol}"
        )


# --- the optional refresher (examples/refresher.yaml) -------------------------------------

REFRESHER_EXAMPLE = K8S_DIR / "examples" / "refresher.yaml"


@pytest.fixture(scope="module")
def refresher() -> dict[str, Manifest]:
    objects = [obj for obj in yaml.safe_load_all(REFRESHER_EXAMPLE.read_text()) if obj]
    kinds = [obj["kind"] for obj in objects]
    assert sorted(kinds) == ["Deployment", "NetworkPolicy"], f"{REFRESHER_EXAMPLE.name}: {kinds}"
    return {obj["kind"]: obj for obj in objects}


def test_the_refresher_runs_the_workers_image_and_settings(
    refresher: dict[str, Manifest], deployment: Manifest, container: Manifest
) -> None:
    spec = refresher["Deployment"]["spec"]["template"]["spec"]
    [refresh] = spec["containers"]
    assert refresh["args"] == ["refresher"]
    assert refresh["image"] == container["image"]
    assert refresh["envFrom"] == container["envFrom"], "the workers' ConfigMap and Secret"
    assert refresh["securityContext"] == container["securityContext"]
    assert spec["securityContext"] == deployment["spec"]["template"]["spec"]["securityContext"]
    namespace = deployment["metadata"]["namespace"]
    for kind, obj in refresher.items():
        assert obj["metadata"]["namespace"] == namespace, f"{kind}: not in {namespace}"


def test_the_refreshers_pods_are_not_the_workers(
    refresher: dict[str, Manifest], deployment: Manifest, network_policy: Manifest
) -> None:
    """Neither the worker Deployment, its Service nor its policy may select them."""
    labels = refresher["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = refresher["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    worker_selector = deployment["spec"]["selector"]["matchLabels"]
    assert not worker_selector.items() <= labels.items(), "the workers' selector matches them"
    assert not network_policy["podSelector"]["matchLabels"].items() <= labels.items()
    policy = refresher["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and not policy.get("ingress")
    ports = _policy_ports(policy["egress"], "egress")
    assert ports == _policy_ports(network_policy["egress"], "egress"), "Kafka, Redis, DNS"


# --- the optional API servers (examples/api.yaml) -----------------------------------------

API_EXAMPLE = K8S_DIR / "examples" / "api.yaml"


@pytest.fixture(scope="module")
def api_servers() -> dict[str, Manifest]:
    objects = [obj for obj in yaml.safe_load_all(API_EXAMPLE.read_text()) if obj]
    kinds = [obj["kind"] for obj in objects]
    assert sorted(kinds) == ["Deployment", "NetworkPolicy", "Service"], (
        f"{API_EXAMPLE.name}: {kinds}"
    )
    return {obj["kind"]: obj for obj in objects}


def test_the_api_servers_run_the_workers_image_settings_and_probes(
    api_servers: dict[str, Manifest], deployment: Manifest, container: Manifest
) -> None:
    spec = api_servers["Deployment"]["spec"]["template"]["spec"]
    [api] = spec["containers"]
    assert api["args"] == ["api"]
    for field in ("image", "envFrom", "env", "ports", "securityContext", "readinessProbe"):
        assert api[field] == container[field], field
    assert api["livenessProbe"] == container["livenessProbe"]
    assert spec["securityContext"] == deployment["spec"]["template"]["spec"]["securityContext"]
    mounts = {m["mountPath"] for m in api["volumeMounts"]}
    assert mounts == {m["mountPath"] for m in container["volumeMounts"]}, "data dir and /tmp"
    namespace = deployment["metadata"]["namespace"]
    for kind, obj in api_servers.items():
        assert obj["metadata"]["namespace"] == namespace, f"{kind}: not in {namespace}"


def test_the_api_servers_are_reached_apart_from_the_workers(
    api_servers: dict[str, Manifest],
    manifests: list[tuple[str, Manifest]],
    deployment: Manifest,
    network_policy: Manifest,
) -> None:
    """Their Service selects them and no worker; the workers' objects never select them."""
    labels = api_servers["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert api_servers["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    worker_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = api_servers["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert not service["selector"].items() <= worker_labels.items(), "it selects workers"
    assert service["ports"] == _one(manifests, "Service")["spec"]["ports"]
    assert (
        api_servers["Service"]["metadata"]["name"] != _one(manifests, "Service")["metadata"]["name"]
    )
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        _one(manifests, "Service")["spec"]["selector"],
        network_policy["podSelector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items(), f"{selector} selects the API servers"
    policy = api_servers["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert _policy_ports(policy["ingress"], "ingress") == _policy_ports(
        network_policy["ingress"], "ingress"
    )
    assert _policy_ports(policy["egress"], "egress") == _policy_ports(
        network_policy["egress"], "egress"
    )
