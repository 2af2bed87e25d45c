"""Pods as real containers: the kubelet's podman runtime, for the images it is given.

`Harness(containers=ContainerRuntime({"lrsweep-trainer": "localhost/lrsweep-trainer:local"}))`
runs every container whose image matches a key (full reference, without tag, or last path
element, as the kubelet's `images=`) as `podman run` of the local image the key names; other
containers stay host processes. The `podman run` process stands for the container's main
process in the kubelet: its exit code is the container's, SIGTERM to it reaches the container
(podman proxies signals), and after the grace period the container is removed by force.

What a container gets, as a kubelet would give it:
- the image's entrypoint, or `command` (`--entrypoint`), with `args`; `$(VAR)` expanded from
  the container's own environment; `workingDir`;
- `env`/`envFrom` (fieldRefs, ConfigMap and Secret keys; a missing one is
  CreateContainerConfigError), HOSTNAME, KUBERNETES_SERVICE_HOST/PORT, and the service
  account's kubeconfig mounted at SERVICE_ACCOUNT_KUBECONFIG (KUBECONFIG), unless
  `automountServiceAccountToken` is false; none of the harness's own environment;
- the host's network (the API server at 127.0.0.1); its pod IP as HARNESS_POD_IP, with the
  kubelet's sitecustomize on PYTHONPATH, so Python servers binding 0.0.0.0 bind the pod IP;
- `securityContext` (pod, then container): runAsUser/runAsGroup (`--user`), runAsNonRoot
  (refused, CreateContainerConfigError, when the user would be root or is not numeric),
  readOnlyRootFilesystem (`--read-only`, no tmpfs added), allowPrivilegeEscalation false,
  capabilities add/drop;
- `emptyDir` (a directory of the pod's, mode 0777) and `hostPath` volumes at their
  volumeMounts (`readOnly`, `subPath`); other kinds are CreateContainerConfigError;
- its termination-message file mounted at `terminationMessagePath`.
Resource limits are not applied (no cgroups here), as for host processes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tests.harness.kubelet import POD_IP_VARIABLE, ConfigError, expand, image_keys
from tests.harness.meta import Obj

if TYPE_CHECKING:
    from tests.harness.kubelet import ContainerRun, Kubelet

SERVICE_ACCOUNT_KUBECONFIG = "/var/run/secrets/harness/kubeconfig"
SITE_DIR = "/var/run/harness/python"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def container_name(pod: Obj, run: ContainerRun) -> str:
    return f"harness-{pod['metadata']['uid']}-{run.name}-{run.restart_count}"


class ContainerRuntime:
    """podman for the images named in `images` (pod image key -> local podman image).

    `engine_env`: the environment podman runs with (its CONTAINERS_CONF, say); default this
    process's. `ran` lists (namespace, pod, container, local image) of each container
    started, for tests."""

    def __init__(
        self, images: Mapping[str, str], *, engine_env: Mapping[str, str] | None = None
    ) -> None:
        self.images = dict(images)
        self.engine_env = dict(os.environ if engine_env is None else engine_env)
        self.ran: list[tuple[str, str, str, str]] = []
        self._users: dict[str, str] = {}
        self._live: set[str] = set()

    def image_for(self, image: str) -> str | None:
        return next((self.images[k] for k in image_keys(image) if k in self.images), None)

    def command_for(
        self, kubelet: Kubelet, pod: Obj, run: ContainerRun, ip: str
    ) -> tuple[list[str], dict[str, str], str] | None:
        """`podman run` of the container, its environment and directory; None when the
        container's image is not one of this runtime's (a host process then)."""
        spec = run.spec
        local = self.image_for(str(spec.get("image", "")))
        if local is None:
            return None
        view = copy.deepcopy(pod)
        view.setdefault("status", {}).update(podIP=ip, hostIP="127.0.0.1")
        own = kubelet._container_env(view, spec)
        name = container_name(pod, run)
        options = ["--rm", "--name", name, "--network", "host", *self._security(pod, spec, local)]
        env = {
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(kubelet.server_port),
            POD_IP_VARIABLE: ip,
        }
        mounts: list[tuple[Path, str, bool]] = [(kubelet.site_dir, SITE_DIR, True)]
        if kubelet._automounts_token(view):
            config = kubelet._service_account_kubeconfig(view)
            config.chmod(0o644)  # for the image's user
            mounts.append((config, SERVICE_ACCOUNT_KUBECONFIG, True))
            env["KUBECONFIG"] = SERVICE_ACCOUNT_KUBECONFIG
        env.update(own)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SITE_DIR, own.get("PYTHONPATH")]))
        run.message_path.touch()
        run.message_path.chmod(0o666)
        path = spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        mounts.append((run.message_path, path, False))
        mounts += self._volumes(kubelet, pod, spec)
        for source, target, read_only in mounts:
            options += ["--volume", f"{source}:{target}" + (":ro" if read_only else "")]
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        if spec.get("workingDir"):
            options += ["--workdir", str(spec["workingDir"])]
        command = [expand(part, own) for part in spec.get("command") or []]
        if command:
            options += ["--entrypoint", json.dumps(command)]
        args = [expand(part, own) for part in spec.get("args") or []]
        self.ran.append((pod["metadata"]["namespace"], pod["metadata"]["name"], run.name, local))
        self._live.add(name)
        argv = ["podman", "run", *options, local, *args]
        return argv, dict(self.engine_env), str(kubelet.workdir)

    def _security(self, pod: Obj, spec: Obj, image: str) -> list[str]:
        context = {
            **(pod["spec"].get("securityContext") or {}),
            **(spec.get("securityContext") or {}),
        }
        options: list[str] = []
        user, group = context.get("runAsUser"), context.get("runAsGroup")
        image_user = self._image_user(image)
        if user is not None or group is not None:
            uid = str(user) if user is not None else image_user.split(":")[0] or "0"
            options += ["--user", uid if group is None else f"{uid}:{group}"]
        if context.get("runAsNonRoot"):
            effective = str(user) if user is not None else image_user.split(":")[0]
            if effective in ("", "0", "root"):
                raise ConfigError("container has runAsNonRoot and image will run as root")
            if not effective.isdigit():
                raise ConfigError(
                    f"container has runAsNonRoot and image has non-numeric user ({effective}), "
                    "cannot verify user is non-root"
                )
        if context.get("readOnlyRootFilesystem"):
            options += ["--read-only", "--read-only-tmpfs=false"]
        if context.get("allowPrivilegeEscalation") is False:
            options += ["--security-opt", "no-new-privileges"]
        capabilities = context.get("capabilities") or {}
        options += [f"--cap-drop={c}" for c in capabilities.get("drop") or []]
        options += [f"--cap-add={c}" for c in capabilities.get("add") or []]
        return options

    def _image_user(self, image: str) -> str:
        if image not in self._users:
            done = subprocess.run(
                ["podman", "image", "inspect", "--format", "{{.Config.User}}", image],
                env=self.engine_env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise LookupError(f'Failed to pull image "{image}": {done.stderr.strip()}')
            self._users[image] = done.stdout.strip()
        return self._users[image]

    @staticmethod
    def _volumes(kubelet: Kubelet, pod: Obj, spec: Obj) -> list[tuple[Path, str, bool]]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts: list[tuple[Path, str, bool]] = []
        for mount in spec.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise ConfigError(f'volume "{mount["name"]}" not found')
            if "emptyDir" in volume:
                source = kubelet.state_dir / "pods" / pod["metadata"]["uid"] / "volumes"
                source = source / mount["name"]
                source.mkdir(parents=True, exist_ok=True)
                source.chmod(0o777)
            elif "hostPath" in volume:
                source = Path(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") == "DirectoryOrCreate":
                    source.mkdir(parents=True, exist_ok=True)
            else:
                raise ConfigError(
                    f'volume "{mount["name"]}": only emptyDir and hostPath volumes are mounted '
                    "in the test cluster's containers"
                )
            if mount.get("subPath"):
                source = source / mount["subPath"]
                source.mkdir(parents=True, exist_ok=True)
            mounts.append((source, mount["mountPath"], bool(mount.get("readOnly"))))
        return mounts

    async def remove(self, pod: Obj, run: ContainerRun) -> None:
        """The container is over when `podman run` is: one that outlived it (SIGKILLed
        after its grace period) is killed and removed."""
        await self._remove(container_name(pod, run))

    async def _remove(self, name: str) -> None:
        if name not in self._live:
            return
        process = await asyncio.create_subprocess_exec(
            "podman",
            "rm",
            "--force",
            "--ignore",
            "--time",
            "0",
            name,
            env=self.engine_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        self._live.discard(name)

    async def stop(self) -> None:
        """Remove every container still there (the kubelet is stopping)."""
        await asyncio.gather(*(self._remove(name) for name in list(self._live)))
