"""The Debian packages (issue 15, part 5): built with dpkg-buildpackage from
a copy of the source tree, unpacked into a throwaway root with `dpkg -x`
(the real system is not touched), and used as a user would: a program
compiled against that root with pkg-config and with CMake, then run; the
packaged server run; lintian on the .debs. docs/PACKAGING.md describes
the packages."""
import glob
import os
import re
import shutil
import subprocess

import pytest

from bwtest import no_asan

SOURCE_DIR = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONSUMER_DIR = os.path.join(os.path.dirname(__file__), "package_consumer")
PACKAGES = ("libbulwark1", "libbulwark-dev", "bulwark-server")
# What the test needs; `scripts/deps.sh test` installs them (as root).
TOOLS = ("dpkg-buildpackage", "dh", "help2man", "lintian", "dpkg-deb", "cmake", "pkg-config", "cc")


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(bulwark VERSION ([0-9.]+)", f.read()).group(1)


def run(argv, timeout=300, **kw):
    """Run argv; fail with its output if it fails."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, argv))}: status {r.returncode}\n" \
                              f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def copy_source(dest):
    """The tracked files (and new, not ignored ones) of the source tree:
    never the build directories, never anything written into the tree."""
    os.makedirs(dest)
    try:
        listing = subprocess.run(["git", "-C", SOURCE_DIR, "ls-files", "-z", "--cached",
                                  "--others", "--exclude-standard"],
                                 capture_output=True, check=True, timeout=60).stdout
        files = [f for f in listing.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:  # not a git checkout: everything but the builds
        shutil.copytree(SOURCE_DIR, dest, dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "build", "__pycache__"))
        return
    for f in files:
        src = os.path.join(SOURCE_DIR, f)
        if not os.path.lexists(src):  # deleted in the work tree
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, f), follow_symlinks=False)


def clean_env(**extra):
    """The environment without what a parent make or the user's shell could
    leak into a package build (jobserver, compiler flags)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CFLAGS", "CPPFLAGS", "LDFLAGS",
                        "PKG_CONFIG_PATH", "PKG_CONFIG_SYSROOT_DIR", "PKG_CONFIG_LIBDIR",
                        "CMAKE_PREFIX_PATH", "LD_LIBRARY_PATH")
           and not k.startswith("DEB_")}
    env.update(extra)
    return env


def inside(path, root):
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def loaded_from(exe, env):
    """Where the dynamic loader finds libbulwark.so.1 for exe."""
    out = run(["ldd", exe], env=env, timeout=30)
    m = re.search(r"libbulwark\.so\.1 => (\S+)", out)
    assert m, out
    return m.group(1)


@no_asan
def test_B_01_the_debian_packages_build_install_and_serve_a_consumer(tmp_path):
    """dpkg-buildpackage -b builds libbulwark1, libbulwark-dev and
    bulwark-server (the library-only configuration plus the server: not the
    project's test suite); unpacked into a root of their own, they give a
    program built with pkg-config (bulwark.pc found by PKG_CONFIG_PATH, and
    through PKG_CONFIG_SYSROOT_DIR) and with CMake (find_package, shared and
    static targets) what it needs, libuv included; each runs against the
    root's library and prints the version. The server runs from the root.
    lintian reports no error."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the package test needs {', '.join(missing)}: `scripts/deps.sh test` "
                    f"installs them (as root)")
    version = project_version()

    # ---- Build, from a copy: dpkg-buildpackage writes to the parent dir.
    src = tmp_path / "src"
    copy_source(str(src))
    env = clean_env(DEB_BUILD_OPTIONS="parallel=2")
    run(["nice", "dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, env=env, timeout=600)
    debs = {p: tmp_path / f"{p}_{version}_{arch()}.deb" for p in PACKAGES}
    for p, deb in debs.items():
        assert deb.exists(), f"{deb.name} not built (debian/changelog's version is " \
                             f"not {version}?): {sorted(os.listdir(tmp_path))}"

    # ---- What each package holds.
    contents = {p: run(["dpkg-deb", "-c", str(d)], timeout=30) for p, d in debs.items()}
    assert re.search(r"libbulwark\.so\.1 -> libbulwark\.so\.", contents["libbulwark1"])
    assert "/libbulwark.so ->" not in contents["libbulwark1"]
    for f in ("usr/include/bulwark.h", "/libbulwark.so -> libbulwark.so.1", "/libbulwark.a",
              "/pkgconfig/bulwark.pc", "/cmake/bulwark/bulwarkConfig.cmake",
              "/cmake/bulwark/bulwarkConfigVersion.cmake"):
        assert f in contents["libbulwark-dev"], (f, contents["libbulwark-dev"])
    assert "./usr/bin/bulwark-server" in contents["bulwark-server"]
    assert "bulwark-server.1.gz" in contents["bulwark-server"]
    fields = run(["dpkg-deb", "-f", str(debs["libbulwark-dev"]), "Depends"], timeout=30)
    assert f"libbulwark1 (= {version})" in fields and "libuv1-dev" in fields, fields
    fields = run(["dpkg-deb", "-f", str(debs["bulwark-server"]), "Depends"], timeout=30)
    assert "libbulwark1" in fields, fields

    # ---- Install into a throwaway root: dpkg -x, never dpkg -i.
    root = tmp_path / "root"
    for deb in debs.values():
        run(["dpkg-deb", "-x", str(deb), str(root)], timeout=60)
    libdirs = glob.glob(str(root / "usr" / "lib" / "*" / "libbulwark.so.1"))
    assert len(libdirs) == 1, libdirs
    libdir = os.path.dirname(libdirs[0])
    pcdir = os.path.join(libdir, "pkgconfig")
    run_env = clean_env(LD_LIBRARY_PATH=libdir)
    expected = f"bulwark {version}, libuv "
    source = os.path.join(CONSUMER_DIR, "consumer.c")

    # ---- pkg-config: the relocatable bulwark.pc, found directly and
    # through a sysroot; every path it gives is inside the root.
    for name, pc_env in (("path", {"PKG_CONFIG_PATH": pcdir}),
                         ("sysroot", {"PKG_CONFIG_SYSROOT_DIR": str(root),
                                      "PKG_CONFIG_PATH": pcdir})):
        e = clean_env(**pc_env)
        flags = run(["pkg-config", "--cflags", "--libs", "bulwark"], env=e, timeout=30).split()
        assert run(["pkg-config", "--modversion", "bulwark"], env=e, timeout=30).strip() == version
        inc = [f[2:] for f in flags if f.startswith("-I")]
        lib = [f[2:] for f in flags if f.startswith("-L")]
        assert inc and inside(inc[0], root) and os.path.exists(os.path.join(inc[0], "bulwark.h")), flags
        assert lib and inside(lib[0], root) and os.path.exists(os.path.join(lib[0], "libbulwark.so")), flags
        assert "-luv" in flags and "-D_DEFAULT_SOURCE" in flags, flags
        exe = str(tmp_path / f"consumer-pc-{name}")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", source, "-o", exe, *flags], timeout=120)
        assert loaded_from(exe, run_env) == os.path.join(libdir, "libbulwark.so.1")
        out = run([exe], env=run_env, timeout=30)
        assert out.startswith(expected) and out.endswith("timer fired\n"), out

    # ---- CMake: find_package(bulwark CONFIG) with CMAKE_PREFIX_PATH.
    major, minor = version.split(".")[:2]
    build = tmp_path / "cmake-consumer"
    cmake_env = clean_env()
    out = run(["cmake", "-S", CONSUMER_DIR, "-B", str(build), f"-DCMAKE_PREFIX_PATH={root / 'usr'}",
               f"-DWANT_VERSION={major}.{minor}",
               f"-DOLDER_VERSION={major}.{int(minor) - 1}" if int(minor) > 0 else "-UOLDER_VERSION",
               "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"], env=cmake_env, timeout=120)
    assert f"-- bulwark {version} from {os.path.join(libdir, 'cmake', 'bulwark')}" in out, out
    if int(minor) > 0:
        assert "-- older request found: 0" in out, out
    run(["nice", "cmake", "--build", str(build), "-j2"], env=cmake_env, timeout=300)
    for exe in ("consumer", "consumer_static"):
        out = run([str(build / exe)], env=run_env, timeout=30)
        assert out.startswith(expected) and out.endswith("timer fired\n"), (exe, out)
    assert loaded_from(str(build / "consumer"), run_env) == os.path.join(libdir, "libbulwark.so.1")
    assert "libbulwark" not in run(["ldd", str(build / "consumer_static")], timeout=30)

    # ---- The packaged server.
    server = str(root / "usr" / "bin" / "bulwark-server")
    assert run([server, "--version"], env=run_env, timeout=30) == f"bulwark-server {version}\n"
    assert loaded_from(server, run_env) == os.path.join(libdir, "libbulwark.so.1")

    # ---- lintian: no error (warnings are reported, not failed on).
    r = subprocess.run(["lintian", "--no-tag-display-limit", *map(str, debs.values())],
                       capture_output=True, text=True, timeout=300, env=clean_env())
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors, r.stdout + r.stderr
    # Its status is 1 for errors, 2 when it could not check the packages.
    assert r.returncode == 0, r.stdout + r.stderr

def arch():
    return run(["dpkg", "--print-architecture"], timeout=30).strip()
