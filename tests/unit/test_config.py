"""KubeletConfiguration subset: defaults, fields, and the kubelet's error texts."""

from __future__ import annotations

import pytest

from shim.config import ConfigError, default_config, parse_config
from shim.cpuset import CPUSet


def test_embedded_default_is_static_pod_scope_with_gates_on() -> None:
    config = default_config()
    assert config.cpu_manager_policy == "static" and config.memory_manager_policy == "Static"
    assert config.topology_manager_policy == "best-effort" and config.topology_manager_scope == "pod"
    assert config.reserved_system_cpus == CPUSet.of([0]) and config.num_reserved_cpus == 1
    assert config.pod_level_enabled()
    assert config.reserved_memory == {0: {"memory": 100 * 2**20}}
    assert config.node_allocatable_reservation() == {"memory": 100 * 2**20}


def test_reads_the_fields_podshim_uses() -> None:
    config = parse_config("""
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cpuManagerPolicy: static
cpuManagerPolicyOptions: {full-pcpus-only: "true"}
cpuManagerReconcilePeriod: 1m30s
kubeReserved: {cpu: 500m, memory: 1Gi}
systemReserved: {cpu: "1", memory: 512Mi}
evictionHard: {memory.available: 200Mi}
memoryManagerPolicy: Static
reservedMemory:
- numaNode: 0
  limits: {memory: 1Gi}
- numaNode: 1
  limits: {memory: 712Mi}
topologyManagerPolicy: single-numa-node
topologyManagerScope: container
topologyManagerPolicyOptions: {prefer-closest-numa-nodes: "true"}
featureGates: {PodLevelResourceManagers: false}
cgroupDriver: systemd
""", source="k.yaml")
    assert config.num_reserved_cpus == 2  # ceil(1.5 CPUs)
    assert config.cpu_manager_reconcile_period == 90.0
    assert config.cpu_manager_policy_options == {"full-pcpus-only": "true"}
    assert config.reserved_memory == {0: {"memory": 2**30}, 1: {"memory": 712 * 2**20}}
    assert config.node_allocatable_reservation() == {"memory": 2**30 + 512 * 2**20 + 200 * 2**20}
    assert not config.pod_level_enabled() and config.gate("PodLevelResources")
    assert config.topology_manager_scope == "container" and config.cgroup_driver == "systemd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpuManagerPolicy: dynamic", 'k.yaml: cpuManagerPolicy: unknown policy: "dynamic"'),
        ("memoryManagerPolicy: static", 'k.yaml: memoryManagerPolicy: unknown policy: "static"'),
        ("topologyManagerPolicy: strict", 'k.yaml: topologyManagerPolicy: unknown policy: "strict"'),
        ("topologyManagerScope: node", 'k.yaml: topologyManagerScope: unknown scope: "node"'),
        ("cpuManagerPolicy: static",
         "k.yaml: cpuManagerPolicy: [cpumanager] the static policy requires systemreserved.cpu + kubereserved.cpu"
         " to be greater than zero"),
        ("reservedSystemCPUs: 3-1", 'k.yaml: reservedSystemCPUs: invalid range "3-1" (3 > 1)'),
        ("kubeReserved: {memory: lots}", "k.yaml: kubeReserved.memory: invalid quantity 'lots'"),
        ("reservedMemory: [{numaNode: -1, limits: {memory: 1Gi}}]", "k.yaml: reservedMemory[0].numaNode"),
        ("cpuManagerReconcilePeriod: soon", "k.yaml: cpuManagerReconcilePeriod: invalid duration 'soon'"),
        ("featureGates: {PodLevelResources: maybe}", "k.yaml: featureGates.PodLevelResources"),
        ("kind: Pod", "k.yaml: kind"),
        ("cpuManagerPolicy: static\nreservedSystemCPUs: '0'\ncpuManagerPolicyOptions: {bogus: 'true'}",
         'k.yaml: cpuManagerPolicyOptions: unknown CPU Manager Policy option: "bogus"'),
        ("cpuManagerPolicy: static\nreservedSystemCPUs: '0'\ncpuManagerPolicyOptions: {full-pcpus-only: maybe}",
         'k.yaml: cpuManagerPolicyOptions: bad value for option "full-pcpus-only"'),
        ("cpuManagerPolicy: static\nreservedSystemCPUs: '0'\ncpuManagerPolicyOptions: {align-by-socket: 'true'}",
         "k.yaml: cpuManagerPolicyOptions: CPU Manager Policy Alpha-level Options not enabled"),
        ("cpuManagerPolicy: static\nreservedSystemCPUs: '0'\ntopologyManagerPolicy: single-numa-node\n"
         "featureGates: {CPUManagerPolicyAlphaOptions: true}\ncpuManagerPolicyOptions: {align-by-socket: 'true'}",
         "k.yaml: cpuManagerPolicyOptions: Topolgy manager single-numa-node policy is incompatible with CPUManager"
         " align-by-socket policy option"),
        ("topologyManagerPolicy: best-effort\ntopologyManagerPolicyOptions: {max-allowable-numa-nodes: '4'}",
         'k.yaml: topologyManagerPolicyOptions: the minimum value of "max-allowable-numa-nodes" should not be less'),
        ("memoryManagerPolicy: Static\nreservedMemory: [{numaNode: 0, limits: {memory: 1Gi}}]",
         'k.yaml: reservedMemory: the total amount "1Gi" of type "memory" is not equal to the value "100Mi"'
         " determined by Node Allocatable feature"),
        ("memoryManagerPolicy: Static\nreservedMemory: [{numaNode: 0, limits: {memory: 50Mi}},"
         " {numaNode: 0, limits: {memory: 50Mi}}]",
         "k.yaml: reservedMemory[1].limits.memory: NUMA node 0 reserves memory twice"),
        ("topologyManagerPolicy: best-effort\ntopologyManagerPolicyOptions: {nope: 'x'}",
         'k.yaml: topologyManagerPolicyOptions: unknown Topology Manager Policy option: "nope"'),
        ("a: [", "k.yaml: invalid YAML"),
    ],
)
def test_errors_are_one_line_and_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="k.yaml")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_reserved_system_cpus_satisfy_the_static_reservation() -> None:
    config = parse_config("cpuManagerPolicy: static\nreservedSystemCPUs: '0,2'")
    assert config.reserved_system_cpus == CPUSet.of([0, 2]) and config.num_reserved_cpus == 2


def test_example_config_spells_out_the_embedded_default() -> None:
    import msgspec
    from shared_paths import REPO

    from shim.config import load_config

    written = load_config(REPO / "examples" / "kubelet-config.yaml")
    assert msgspec.structs.replace(written, source="(defaults)") == default_config()


def test_kubelet_mapping_round_trip() -> None:
    import msgspec

    from shim.config import config_from_mapping

    config = parse_config("""
cpuManagerPolicy: static
cpuManagerPolicyOptions: {full-pcpus-only: "true"}
kubeReserved: {cpu: 1500m, memory: 1Gi}
reservedSystemCPUs: "0,2"
memoryManagerPolicy: Static
reservedMemory: [{numaNode: 1, limits: {memory: 1124Mi}}]
topologyManagerPolicy: restricted
cpuManagerReconcilePeriod: 2.5s
""", source="x")
    again = config_from_mapping(config.to_kubelet_config(), source="x")
    assert again == config
    assert msgspec.structs.replace(default_config(), source="x") == config_from_mapping(
        default_config().to_kubelet_config(), source="x")
