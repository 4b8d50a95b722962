"""Reading deploy/ as the tools that use it would: the Dockerfile's stages, the compose file
with its variables filled in, and the Kubernetes manifests with each container's environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = DEPLOY / "compose.yaml"
KUSTOMIZATION = K8S / "kustomization.yaml"

# Variables deploy/ may name besides vidq's settings, each documented by its own program:
# boto3's credentials, the postgres image's and MinIO's, and the shell's PATH.
OTHER_VARIABLE = re.compile(r"(AWS|POSTGRES|MINIO)_[A-Z0-9_]+|PATH")


# The image recipe.


@dataclass
class Stage:
    """One FROM of the Dockerfile and the instructions under it."""

    name: str | None
    commands: list[dockerfile.Command]

    def all(self, instruction: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd.lower() == instruction]

    def last(self, instruction: str) -> dockerfile.Command:
        found = self.all(instruction)
        assert found, f"no {instruction.upper()} in stage {self.name}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for command in self.all("env"):
            pairs = command.value
            values.update(zip(pairs[0::2], pairs[1::2], strict=True))
        return values


def dockerfile_stages() -> tuple[list[str], list[Stage]]:
    """The ARGs before the first FROM, and the stages."""
    args: list[str] = []
    stages: list[Stage] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        instruction = command.cmd.lower()
        if instruction == "from":
            value = command.value
            name = value[2] if len(value) == 3 and value[1].lower() == "as" else None
            stages.append(Stage(name, []))
        elif stages:
            stages[-1].commands.append(command)
        elif instruction == "arg":
            args.extend(command.value)
    return args, stages


def image_env() -> dict[str, str]:
    """The environment the image gives every container (its last stage's ENV)."""
    return dockerfile_stages()[1][-1].env()


def image_uid() -> int:
    user = dockerfile_stages()[1][-1].last("user").value[0]
    return int(user.split(":")[0])


# The compose file.


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _default(match: re.Match[str]) -> str:
    assert "?" not in (match.group(2) or ""), f"{match.group(0)} needs a value to start"
    return match.group(3) or ""


def interpolated(value: str) -> str:
    """A compose value as compose makes it with nothing exported: `${NAME:-default}` is its
    default, `$$` a literal `$`."""
    return _INTERPOLATION.sub(_default, value).replace("$$", "$")


def interpolation_names(text: str) -> set[str]:
    """The variables a compose file asks of the shell (`${NAME...}`)."""
    return {m.group(1) for m in _INTERPOLATION.finditer(text)}


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as its container gets it: the image's ENV, then the service's
    own, interpolated; a variable without a value (taken from the shell) stays unset."""
    values = dict(image_env()) if service.get("image", "").startswith("vidq") else {}
    for name, value in (service.get("environment") or {}).items():
        if value is not None:
            values[name] = interpolated(str(value))
    return values


def duration_seconds(text: str) -> float:
    """A compose duration such as `30s` or `1m30s`."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
    assert match and text, f"not a duration: {text!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


# The Kubernetes manifests.


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(KUSTOMIZATION.read_text())
    return loaded


def manifest_files() -> list[Path]:
    """Every manifest in deploy/k8s, the kustomization itself aside."""
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def applied_documents() -> list[dict[str, Any]]:
    """What `kubectl apply -k` applies: the documents of the files the kustomization lists."""
    return [doc for name in kustomization()["resources"] for doc in documents(K8S / name)]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each Deployment's and Job's pod template, by the workload's name."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }


def only_container(template: dict[str, Any]) -> dict[str, Any]:
    containers = template["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def container_environment(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """A container's environment: the image's ENV, then envFrom's ConfigMaps and Secrets,
    then its own env, later ones winning (as the kubelet and the runtime do)."""
    values = dict(image_env())
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            values.update(find(docs, "Secret", source["secretRef"]["name"])["stringData"])
    for item in container.get("env", []):
        values[item["name"]] = item["value"]
    return values


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def quantity(text: str | int) -> float:
    """A Kubernetes quantity: `2Gi` in bytes, `250m` in CPUs."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(text))
    assert match, f"not a quantity: {text!r}"
    number, suffix = float(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    assert suffix == "", f"unknown suffix in {text!r}"
    return number
