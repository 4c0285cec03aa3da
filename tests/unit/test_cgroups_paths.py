"""shim.cgroups.paths on fake trees: mounts, /proc/<pid>/cgroup, OCI cgroupsPath, confinement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.cgroups import paths
from shim.cgroups.paths import CgroupPathError

HYBRID_MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,nosuid shared:11 - cgroup cgroup rw,cpuset
99 31 0:31 / /mnt/cpuset\\040copy rw - cgroup cgroup rw,cpuset
"""

V2_MOUNTINFO = "28 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"

UID = "1234abcd-56ef-7890-abcd-ef1234567890"
CID = "0123456789abcdef" * 4


def make_root(tmp_path: Path, mountinfo: str, *, v2_controllers: str | None = None) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    mounts = paths.parse_mountinfo(mountinfo, tmp_path)
    for mount in (*mounts.v1, *([mounts.unified] if mounts.unified else [])):
        Path(mount.mountpoint).mkdir(parents=True, exist_ok=True)
    if v2_controllers is not None and mounts.unified is not None:
        Path(mounts.unified.mountpoint, "cgroup.controllers").write_text(v2_controllers + "\n")
    return tmp_path


def write_proc_cgroup(root: Path, pid: int, text: str) -> None:
    (root / f"proc/{pid}").mkdir(parents=True, exist_ok=True)
    (root / f"proc/{pid}/cgroup").write_text(text)


# -- mounts ------------------------------------------------------------------------------------


def test_hybrid_mounts_put_cpuset_and_cpu_on_v1(tmp_path: Path) -> None:
    root = make_root(tmp_path, HYBRID_MOUNTINFO, v2_controllers="hugetlb")
    mounts = paths.detect_mounts(root)
    assert mounts.mode == "hybrid"
    assert mounts.for_controller("cpuset").mountpoint == str(root / "sys/fs/cgroup/cpuset")
    assert mounts.for_controller("cpuset").version == "v1"
    assert mounts.for_controller("cpu").mountpoint == str(root / "sys/fs/cgroup/cpu")
    assert mounts.unified is not None and mounts.unified.mountpoint == str(root / "sys/fs/cgroup/unified")
    assert mounts.for_controller("hugetlb").version == "v2"
    with pytest.raises(CgroupPathError, match="no cgroup mount provides the rdma controller"):
        mounts.for_controller("rdma")


def test_v1_mounts_with_combined_cpu_cpuacct_and_escaped_duplicate(tmp_path: Path) -> None:
    mounts = paths.parse_mountinfo(V1_MOUNTINFO, tmp_path)
    assert mounts.mode == "v1"
    assert mounts.for_controller("cpu").mountpoint == str(tmp_path / "sys/fs/cgroup/cpu,cpuacct")
    assert mounts.for_controller("cpuacct") == mounts.for_controller("cpu")
    # the second mount of the cpuset hierarchy (with an escaped space) is a duplicate
    assert [os.path.basename(m.mountpoint) for m in mounts.v1] == ["cpu,cpuacct", "cpuset"]


def test_pure_v2_mount(tmp_path: Path) -> None:
    root = make_root(tmp_path, V2_MOUNTINFO, v2_controllers="cpuset cpu io memory pids")
    mounts = paths.detect_mounts(root)
    assert mounts.mode == "v2"
    assert mounts.for_controller("cpuset") == mounts.for_controller("cpu")
    assert mounts.for_controller("cpuset").controllers == frozenset({"cpuset", "cpu", "io", "memory", "pids"})


def test_v2_without_cpuset_delegated_is_refused(tmp_path: Path) -> None:
    mounts = paths.detect_mounts(make_root(tmp_path, V2_MOUNTINFO, v2_controllers="memory pids"))
    with pytest.raises(CgroupPathError, match="cpuset"):
        mounts.for_controller("cpuset")


def test_no_mountinfo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupPathError, match="cannot read"):
        paths.detect_mounts(tmp_path)
    assert paths.parse_mountinfo("").mode == "none"


# -- /proc/<pid>/cgroup --------------------------------------------------------------------------

V1_PROC = f"""\
12:cpuset:/kubepods/burstable/pod{UID}/{CID}
4:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}
1:name=systemd:/kubepods/burstable/pod{UID}/{CID}
0::/
"""


def test_parse_proc_cgroup_v1_and_v2_lines() -> None:
    parsed = paths.parse_proc_cgroup(V1_PROC)
    assert parsed.v1["cpuset"] == parsed.v1["cpu"] == parsed.v1["cpuacct"] == f"/kubepods/burstable/pod{UID}/{CID}"
    assert parsed.v1["name=systemd"].endswith(CID)
    assert parsed.unified == "/"
    with pytest.raises(CgroupPathError, match="malformed"):
        paths.parse_proc_cgroup("garbage\n")


def test_location_from_proc_on_hybrid(tmp_path: Path) -> None:
    root = make_root(tmp_path, V1_MOUNTINFO)
    write_proc_cgroup(root, 42, V1_PROC)
    mounts = paths.detect_mounts(root)
    loc = paths.resolve_container(mounts, pid=42, cgroups_path="/ignored", root=root)
    rel = f"kubepods/burstable/pod{UID}/{CID}"
    assert loc.cpuset.path == str(root / "sys/fs/cgroup/cpuset" / rel)
    assert loc.cpu.path == str(root / "sys/fs/cgroup/cpu,cpuacct" / rel)
    assert loc.cpuset.version == loc.cpu.version == "v1"
    assert loc.cpuset.relative == "/" + rel
    assert loc.cpuset.ancestors() == [
        str(root / "sys/fs/cgroup/cpuset/kubepods"),
        str(root / "sys/fs/cgroup/cpuset/kubepods/burstable"),
        str(root / f"sys/fs/cgroup/cpuset/kubepods/burstable/pod{UID}"),
    ]


def test_location_from_proc_on_v2_with_crun_subgroup(tmp_path: Path) -> None:
    root = make_root(tmp_path, V2_MOUNTINFO, v2_controllers="cpuset cpu")
    leaf = f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CID}.scope/container"
    write_proc_cgroup(root, 7, f"0::{leaf}\n")
    loc = paths.resolve_container(paths.detect_mounts(root), pid=7, cgroups_path=None, root=root)
    assert loc.cpuset.path == loc.cpu.path == str(root / "sys/fs/cgroup" / leaf.lstrip("/"))
    assert loc.cpuset.version == "v2"


def test_proc_without_the_needed_line(tmp_path: Path) -> None:
    mounts = paths.detect_mounts(make_root(tmp_path, V2_MOUNTINFO, v2_controllers="cpuset cpu"))
    with pytest.raises(CgroupPathError, match="no cgroup v2 '0::' line"):
        paths.location_from_proc(paths.parse_proc_cgroup("3:cpuset:/x\n"), mounts)
    v1 = paths.parse_mountinfo(V1_MOUNTINFO, tmp_path)
    with pytest.raises(CgroupPathError, match="v1 cpuset controller"):
        paths.location_from_proc(paths.parse_proc_cgroup("0::/x\n"), v1)


def test_mount_showing_a_subtree_strips_its_root(tmp_path: Path) -> None:
    info = f"28 23 0:26 /kubepods/pod{UID} /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    root = make_root(tmp_path, info, v2_controllers="cpuset cpu")
    mounts = paths.detect_mounts(root)
    loc = paths.location_from_proc(paths.parse_proc_cgroup(f"0::/kubepods/pod{UID}/{CID}\n"), mounts)
    assert loc.cpuset.path == str(root / "sys/fs/cgroup" / CID)
    with pytest.raises(CgroupPathError, match="outside the mounted subtree"):
        paths.location_from_proc(paths.parse_proc_cgroup("0::/kubepods/other/x\n"), mounts)


def test_falls_back_to_cgroups_path_when_process_is_gone(tmp_path: Path) -> None:
    root = make_root(tmp_path, V1_MOUNTINFO)
    mounts = paths.detect_mounts(root)
    loc = paths.resolve_container(mounts, pid=999, cgroups_path=f"/kubepods/pod{UID}/{CID}", root=root)
    assert loc.cpuset.path == str(root / f"sys/fs/cgroup/cpuset/kubepods/pod{UID}/{CID}")
    with pytest.raises(CgroupPathError, match=r"/proc/999/cgroup: .*no linux.cgroupsPath"):
        paths.resolve_container(mounts, pid=999, cgroups_path=None, root=root)


def test_proc_path_escaping_is_not_papered_over(tmp_path: Path) -> None:
    root = make_root(tmp_path, V1_MOUNTINFO)
    write_proc_cgroup(root, 5, "3:cpuset:/../../etc\n2:cpu,cpuacct:/\n")
    with pytest.raises(CgroupPathError, match=r"contains '\.\.'"):
        paths.resolve_container(paths.detect_mounts(root), pid=5, cgroups_path="/fine", root=root)


# -- OCI cgroupsPath -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expanded"),
    [
        ("-.slice", "/"),
        ("system.slice", "/system.slice"),
        ("kubepods.slice", "/kubepods.slice"),
        ("kubepods-burstable.slice", "/kubepods.slice/kubepods-burstable.slice"),
        (
            "kubepods-burstable-pod12_34.slice",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice",
        ),
    ],
)
def test_expand_slice(name: str, expanded: str) -> None:
    assert paths.expand_slice(name) == expanded


@pytest.mark.parametrize("name", [".slice", "a", "a.scope", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice"])
def test_expand_slice_rejects(name: str) -> None:
    with pytest.raises(CgroupPathError, match=f"invalid slice name: {name}"):
        paths.expand_slice(name)


ESC = UID.replace("-", "_")
OCI_CASES = [
    # containerd, cgroupfs driver
    (f"/kubepods/burstable/pod{UID}/{CID}", {}, f"/kubepods/burstable/pod{UID}/{CID}"),
    (f"/kubepods/pod{UID}/{CID}", {}, f"/kubepods/pod{UID}/{CID}"),
    # CRI-O, cgroupfs driver
    (f"/kubepods/besteffort/pod{UID}/crio-{CID}", {}, f"/kubepods/besteffort/pod{UID}/crio-{CID}"),
    # containerd, systemd driver
    (
        f"kubepods-burstable-pod{ESC}.slice:cri-containerd:{CID}",
        {},
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESC}.slice/cri-containerd-{CID}.scope",
    ),
    # CRI-O, systemd driver, Guaranteed pod
    (f"kubepods-pod{ESC}.slice:crio:{CID}", {}, f"/kubepods.slice/kubepods-pod{ESC}.slice/crio-{CID}.scope"),
    # crun on v2 with systemd: the default /container sub-cgroup
    (
        f"kubepods-pod{ESC}.slice:crio:{CID}",
        {"runtime": "crun", "version": "v2"},
        f"/kubepods.slice/kubepods-pod{ESC}.slice/crio-{CID}.scope/container",
    ),
    # crun: the annotation renames or disables the sub-cgroup; v1 has none by default
    (
        f"kubepods-pod{ESC}.slice:crio:{CID}",
        {"runtime": "crun", "version": "v2", "annotations": {"run.oci.systemd.subgroup": "payload"}},
        f"/kubepods.slice/kubepods-pod{ESC}.slice/crio-{CID}.scope/payload",
    ),
    (
        f"kubepods-pod{ESC}.slice:crio:{CID}",
        {"runtime": "crun", "version": "v2", "annotations": {"run.oci.systemd.subgroup": ""}},
        f"/kubepods.slice/kubepods-pod{ESC}.slice/crio-{CID}.scope",
    ),
    (
        f"kubepods-pod{ESC}.slice:crio:{CID}",
        {"runtime": "crun", "version": "v1"},
        f"/kubepods.slice/kubepods-pod{ESC}.slice/crio-{CID}.scope",
    ),
    # crun with cgroupfs: no sub-cgroup
    (f"/kubepods/pod{UID}/{CID}", {"runtime": "crun", "version": "v2"}, f"/kubepods/pod{UID}/{CID}"),
    # a unit that is a slice ignores the prefix; an empty slice is system.slice; "-.slice" is the root
    ("machine.slice:ignored:mine-sub.slice", {}, "/machine.slice/mine-sub.slice"),
    (":runc:abc", {}, "/system.slice/runc-abc.scope"),
    ("-.slice:x:abc", {}, "/x-abc.scope"),
    # defaults for an empty value
    ("", {"driver": "systemd", "container_id": "abc"}, "/system.slice/runc-abc.scope"),
    ("", {"driver": "cgroupfs", "container_id": "abc"}, "/abc"),
    # relative cgroupfs path, redundant separators
    ("kubepods//pod1/./c", {}, "/kubepods/pod1/c"),
]


@pytest.mark.parametrize(("value", "options", "expected"), OCI_CASES)
def test_oci_hierarchy_path(value: str, options: dict[str, object], expected: str) -> None:
    assert paths.oci_hierarchy_path(value, **options) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "options", "message"),
    [
        ("a.slice:b", {"driver": "systemd"}, 'expected cgroupsPath to be of format "slice:prefix:name"'),
        ("a.slice:b:", {}, "empty unit name"),
        ("bad-.slice:p:n", {}, "invalid slice name"),
        ("/kubepods/../../etc", {}, r"contains '\.\.'"),
        ("", {"driver": "cgroupfs"}, "empty cgroupsPath"),
    ],
)
def test_oci_hierarchy_path_errors(value: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(CgroupPathError, match=message):
        paths.oci_hierarchy_path(value, **options)  # type: ignore[arg-type]


def test_location_from_oci_uses_each_controllers_version(tmp_path: Path) -> None:
    root = make_root(tmp_path, V2_MOUNTINFO, v2_controllers="cpuset cpu")
    mounts = paths.detect_mounts(root)
    loc = paths.location_from_oci(f"kubepods-pod{ESC}.slice:crio:{CID}", mounts, runtime="crun")
    scope = f"kubepods.slice/kubepods-pod{ESC}.slice/crio-{CID}.scope"
    assert loc.cpuset.path == str(root / f"sys/fs/cgroup/{scope}/container")
    hybrid = paths.parse_mountinfo(HYBRID_MOUNTINFO, tmp_path)
    loc = paths.location_from_oci(f"kubepods-pod{ESC}.slice:crio:{CID}", hybrid, runtime="crun")
    assert os.path.basename(loc.cpuset.path) == f"crio-{CID}.scope"  # v1 hierarchies: no sub-cgroup


@pytest.mark.parametrize(
    ("qos", "driver", "expected"),
    [
        ("Guaranteed", "cgroupfs", f"/kubepods/pod{UID}"),
        ("Burstable", "cgroupfs", f"/kubepods/burstable/pod{UID}"),
        ("BestEffort", "cgroupfs", f"/kubepods/besteffort/pod{UID}"),
        ("Guaranteed", "systemd", f"/kubepods.slice/kubepods-pod{ESC}.slice"),
        ("Burstable", "systemd", f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESC}.slice"),
        ("BestEffort", "systemd", f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{ESC}.slice"),
    ],
)
def test_kubelet_pod_cgroup(qos: paths.QOSClass, driver: paths.Driver, expected: str) -> None:
    assert paths.kubelet_pod_cgroup(UID, qos, driver) == expected


@pytest.mark.parametrize(
    ("parent", "runtime", "expected"),
    [
        (f"/kubepods/burstable/pod{UID}", "containerd", f"/kubepods/burstable/pod{UID}/{CID}"),
        (f"/kubepods/burstable/pod{UID}", "crio", f"/kubepods/burstable/pod{UID}/crio-{CID}"),
        (f"kubepods-burstable-pod{ESC}.slice", "containerd", f"kubepods-burstable-pod{ESC}.slice:cri-containerd:{CID}"),
        (f"/kubepods.slice/kubepods-pod{ESC}.slice", "crio", f"kubepods-pod{ESC}.slice:crio:{CID}"),
    ],
)
def test_cri_cgroups_path_round_trips(parent: str, runtime: paths.ContainerRuntime, expected: str) -> None:
    value = paths.cri_cgroups_path(parent, CID, runtime)
    assert value == expected
    # expanding what the runtime wrote lands under the kubelet's pod cgroup
    pod = parent if parent.startswith("/") else paths.expand_slice(parent)
    assert paths.oci_hierarchy_path(value).startswith(pod + "/")


# -- confinement ---------------------------------------------------------------------------------


def test_confine_accepts_plain_and_absolute_paths(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    (mount / "a/b").mkdir(parents=True)
    assert paths.confine(mount, "/a/b") == str(mount / "a/b")
    assert paths.confine(mount, "a//./b/") == str(mount / "a/b")
    assert paths.confine(mount, "/") == str(mount)
    assert paths.confine(mount, "/a/not-yet") == str(mount / "a/not-yet")


@pytest.mark.parametrize("value", ["../x", "/a/../../x", "/a/..", "a/\x00b"])
def test_confine_rejects_dotdot_and_nul(tmp_path: Path, value: str) -> None:
    with pytest.raises(CgroupPathError, match="contains"):
        paths.confine(tmp_path, value)


def test_confine_rejects_symlinks_out_of_the_mount(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    (mount / "inner").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (mount / "escape").symlink_to(tmp_path / "outside")
    (mount / "abs").symlink_to("/etc")
    (mount / "ok").symlink_to(mount / "inner")
    for value in ("/escape", "/escape/deeper", "abs"):
        with pytest.raises(CgroupPathError, match="escapes the cgroup mount"):
            paths.confine(mount, value)
    assert paths.confine(mount, "/ok") == str(mount / "inner")


def test_resolved_is_realpath(tmp_path: Path) -> None:
    (tmp_path / "real/sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("real/sub", "link/sub", "link/./sub/", "link/missing/deeper", "dangling", "dangling/x", "."):
        path = str(tmp_path / name)
        assert paths.resolved(path) == os.path.realpath(path), name


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("/a/b", "/a/b"), ("/a//b/", "/a/b"), ("/a/./b/.", "/a/b"), ("/", "/"), ("//", "/"), ("a/b/", "a/b"),
     ("", "."), (".", "."), ("/a/../b", "/a/../b")],
)
def test_clean_spells_a_path_as_pathlib_does_without_resolving_dotdot(raw: str, cleaned: str) -> None:
    assert paths.clean(raw) == cleaned
    if ".." not in raw and not raw.startswith("//"):  # pathlib keeps POSIX's "//" root; Linux has none
        assert paths.clean(raw) == str(Path(raw))
    assert paths.clean(Path("/x") / "y") == "/x/y"  # a PathLike is accepted


def test_join_and_is_below() -> None:
    assert paths.join("/m", "a/b", "c") == "/m/a/b/c"
    assert paths.join("/m/", "/a") == "/m/a"
    assert paths.is_below("/m/a", "/m") and paths.is_below("/m/a/b", "/m/a") and paths.is_below("/a", "/")
    assert not paths.is_below("/m", "/m")  # strictly below
    assert not paths.is_below("/mx/a", "/m")  # a sibling sharing a prefix is not below
    assert not paths.is_below("/", "/")


def test_a_controller_path_lies_under_its_mount() -> None:
    leaf = paths.ControllerPath("cpuset", "v1", "/m/", "/m//kubepods/pod1/c1/")
    assert (leaf.mount, leaf.path, leaf.relative) == ("/m", "/m/kubepods/pod1/c1", "/kubepods/pod1/c1")
    assert leaf.ancestors() == ["/m/kubepods", "/m/kubepods/pod1"]
    root = paths.ControllerPath("cpuset", "v2", "/m", "/m")
    assert (root.relative, root.ancestors()) == ("/", [])
    for outside in ("/mx/c1", "/elsewhere"):
        with pytest.raises(CgroupPathError, match="not under its cgroup mount"):
            paths.ControllerPath("cpuset", "v1", "/m", outside)


def test_lexical_locations_reject_dotdot() -> None:
    with pytest.raises(CgroupPathError):
        paths.CgroupLocation.v1("/m/cpuset", "/m/cpu", "/a/../b")
    loc = paths.CgroupLocation.v2("/m", "/kubepods/pod1/c1")
    assert loc.cpuset.path == "/m/kubepods/pod1/c1" and loc.cpu == paths.ControllerPath(
        "cpu", "v2", "/m", "/m/kubepods/pod1/c1"
    )
