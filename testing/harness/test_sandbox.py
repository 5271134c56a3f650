"""Sandboxes: the virtual one (just-bash over the run's in-memory tree) and the local one (a
temporary host directory), behind one protocol, chosen by ``AgentConfig.sandbox``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flue_actors import AgentConfig
from flue_actors.errors import DefinitionError, SandboxPathError
from flue_actors.sandbox import (
    LocalSandbox,
    Sandbox,
    SandboxContext,
    ShellResult,
    VirtualSandbox,
)
from harness.test_sessions import make_harness

# --- the virtual sandbox ----------------------------------------------------------------------


@pytest.fixture
def virtual() -> VirtualSandbox:
    return VirtualSandbox()


@pytest.mark.parametrize(
    ("command", "stdout"),
    [
        ("echo hello", "hello\n"),
        ("printf 'a\\nb\\nc\\n' > f.txt; cat f.txt | wc -l", "3\n"),
        ("printf 'a\\nb\\nc\\n' > f.txt; head -n1 f.txt; tail -n1 f.txt", "a\nc\n"),
        ("echo one > f.txt; echo two >> f.txt; grep -c o f.txt", "2\n"),
        ("echo hello world | sed 's/world/there/'", "hello there\n"),
        ("mkdir -p d/e && echo x > d/e/f && cp d/e/f g && mv g h && ls", "d\nh\n"),
        ("echo x > f; rm f; test -e f || echo gone", "gone\n"),
        ("pwd", "/workspace\n"),
        ("false; echo $?", "1\n"),
        ("X=1; export X; echo $X", "1\n"),
    ],
)
async def test_virtual_shell_commands(virtual: VirtualSandbox, command: str, stdout: str) -> None:
    result = await virtual.run(command)
    assert result == ShellResult(stdout, "", 0)


async def test_virtual_exit_codes_and_stderr(virtual: VirtualSandbox) -> None:
    assert (await virtual.run("exit 3")).exit_code == 3
    missing = await virtual.run("cat missing.txt")
    assert missing.exit_code == 1
    assert "missing.txt" in missing.stderr
    assert (await virtual.run("no-such-command")).exit_code == 127


async def test_virtual_env_and_cwd_are_per_call(virtual: VirtualSandbox) -> None:
    assert (await virtual.run("echo $TOKEN", env={"TOKEN": "t1"})).stdout == "t1\n"
    # Neither the variable nor a `cd` carries over into the next call; files do.
    assert (await virtual.run('echo "[$TOKEN]"; mkdir sub; cd sub')).stdout == "[]\n"
    assert (await virtual.run("pwd")).stdout == "/workspace\n"
    assert (await virtual.run("pwd", cwd="sub")).stdout == "/workspace/sub\n"
    with pytest.raises(SandboxPathError):
        await virtual.run("pwd", cwd="../../..")


async def test_virtual_sees_no_host_environment(
    virtual: VirtualSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUE_HOST_SECRET", "host-only")
    assert (await virtual.run('echo "[$FLUE_HOST_SECRET]"')).stdout == "[]\n"


async def test_virtual_shell_and_fs_share_files(virtual: VirtualSandbox) -> None:
    await virtual.fs.write_file("in/doc.txt", "from fs\n")
    assert (await virtual.run("cat in/doc.txt")).stdout == "from fs\n"
    await virtual.run("echo 'from shell' > out.txt; mkdir made")
    assert await virtual.fs.read_file("out.txt") == "from shell\n"
    assert (await virtual.fs.stat("made")).is_directory
    await virtual.run("rm out.txt")
    assert not await virtual.fs.exists("out.txt")


async def test_virtual_timeout(virtual: VirtualSandbox) -> None:
    started = time.monotonic()
    result = await virtual.run("sleep 10", timeout=0.2)
    assert result.exit_code == 124
    assert time.monotonic() - started < 5


async def test_harness_fs_is_the_sandbox_fs() -> None:
    harness = make_harness()
    assert isinstance(harness.sandbox, VirtualSandbox)
    assert harness.fs is harness.sandbox.fs
    await harness.fs.write_file("a.txt", "A\n")
    assert (await harness.sandbox.run("cat a.txt")).stdout == "A\n"


async def test_known_just_bash_deviations(virtual: VirtualSandbox) -> None:
    # Recorded in the README: just-bash's cat ends a file lacking one with a newline, and ls of
    # an empty folder prints an empty line. Real bash does neither; these pin the behaviour.
    await virtual.fs.write_file("a.txt", "A")
    assert (await virtual.run("cat a.txt")).stdout == "A\n"
    assert (await virtual.run("mkdir e; ls e")).stdout == "\n"


# --- the local sandbox -------------------------------------------------------------------------


@pytest.fixture
async def local() -> AsyncIterator[LocalSandbox]:
    sandbox = LocalSandbox()
    yield sandbox
    await sandbox.close()


async def test_local_runs_real_bash_in_its_directory(local: LocalSandbox) -> None:
    result = await local.run("pwd; echo hi > f.txt; ls")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [str(local.root / "workspace"), "f.txt"]
    assert await local.fs.read_file("f.txt") == "hi\n"
    await local.fs.write_file("sub/g.txt", "G")
    assert (await local.run("cat g.txt", cwd="sub")).stdout == "G"
    assert (await local.run("exit 7")).exit_code == 7


async def test_local_environment_is_scrubbed(
    local: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUE_HOST_SECRET", "host-only")
    result = await local.run("env", env={"GIVEN": "yes"})
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert "FLUE_HOST_SECRET" not in names
    assert "GIVEN=yes" in result.stdout.splitlines()
    assert f"HOME={local.root}" in result.stdout.splitlines()
    assert names <= {"PATH", "HOME", "LANG", "GIVEN", "PWD", "SHLVL", "_", "OLDPWD"}


async def test_local_timeout_kills_the_process_group(local: LocalSandbox) -> None:
    started = time.monotonic()
    result = await local.run("sleep 10 & echo $! > bg.pid; sleep 10; echo never", timeout=0.3)
    assert result.exit_code == 124
    assert "never" not in result.stdout
    assert time.monotonic() - started < 5
    # The backgrounded child went with the group: its pid is gone (reaped by init).
    pid = int(await local.fs.read_file("bg.pid"))
    for _ in range(50):
        if not _alive(pid):
            break
        await asyncio.sleep(0.02)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/../x", "a/../../../b", "\x00"])
async def test_local_paths_escaping_are_refused(local: LocalSandbox, path: str) -> None:
    with pytest.raises(SandboxPathError):
        await local.fs.read_file(path)
    with pytest.raises(SandboxPathError):
        await local.fs.write_file(path, "x")


async def test_local_absolute_paths_are_sandbox_paths(local: LocalSandbox) -> None:
    await local.fs.write_file("/etc/passwd", "mine")
    assert (local.root / "etc" / "passwd").read_text() == "mine"


async def test_local_symlinks_out_of_the_root_are_refused(
    local: LocalSandbox, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path, local.root / "workspace" / "out")
    os.symlink(tmp_path / "secret.txt", local.root / "workspace" / "leak.txt")
    for path in ("out/secret.txt", "leak.txt", "out"):
        with pytest.raises(SandboxPathError):
            await local.fs.read_file(path)
    with pytest.raises(SandboxPathError):
        await local.fs.write_file("out/new.txt", "x")
    with pytest.raises(SandboxPathError):
        await local.run("ls", cwd="out")
    assert not (tmp_path / "new.txt").exists()
    # A link that stays inside the root is fine.
    await local.fs.write_file("real.txt", "in")
    os.symlink(local.root / "workspace" / "real.txt", local.root / "workspace" / "alias.txt")
    assert await local.fs.read_file("alias.txt") == "in"


async def test_local_directory_removed_at_harness_close() -> None:
    harness = make_harness(sandbox="local")
    assert isinstance(harness.sandbox, LocalSandbox)
    root = harness.sandbox.root
    await harness.fs.write_file("x.txt", "x")
    assert root.is_dir()
    await harness.close()
    assert not root.exists()


# --- choosing a sandbox ------------------------------------------------------------------------


async def test_a_sandbox_factory_is_called_with_the_context() -> None:
    made: list[SandboxContext] = []

    def factory(context: SandboxContext) -> Sandbox:
        made.append(context)
        return VirtualSandbox(cwd=context.cwd)

    harness = make_harness(sandbox=factory, cwd="/project")
    assert made == [SandboxContext(id="", cwd="/project")]
    assert harness.fs.cwd == "/project"


def test_an_unknown_sandbox_is_refused() -> None:
    with pytest.raises(DefinitionError, match="sandbox"):
        AgentConfig(model="fake/echo", sandbox="docker")  # type: ignore[arg-type]


async def test_no_command_can_patch_asyncio_for_the_whole_process() -> None:
    """just-bash applies nest_asyncio on one path (command substitution in an array subscript),
    which would replace asyncio.run for every run in the host; the sandbox refuses that."""
    import asyncio

    from flue_actors.sandbox._virtual import VirtualSandbox

    result = await VirtualSandbox().run("arr=(a b c); echo ${arr[$(echo 1)]}")

    assert result.stdout == "b\n"
    assert asyncio.run.__module__ == "asyncio.runners"
