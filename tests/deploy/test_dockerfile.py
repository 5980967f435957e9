"""Dockerfile: slim, non-root, exec-form entrypoint the CLI understands, health check."""

from __future__ import annotations

import shlex

from service.cli import build_parser
from tests.deploy.manifests import (
    GRPC_PORT,
    METRICS_PORT,
    ROOT,
    Instruction,
    dockerfile,
    dockerfile_env,
    final_stage,
    setting_field,
)


def _only(keyword: str) -> Instruction:
    found = [i for i in final_stage() if i.keyword == keyword]
    assert len(found) == 1, (
        f"expected one {keyword} in the final stage, found {len(found)}"
    )
    return found[0]


def test_both_stages_start_from_a_slim_python() -> None:
    bases = [i.argument.split()[0] for i in dockerfile() if i.keyword == "FROM"]
    assert bases and all(b.startswith("python:3.11-slim") for b in bases), bases


def test_runs_as_a_fixed_non_root_uid() -> None:
    user = _only("USER").argument
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can verify it"
    assert gid == "" or int(gid) != 0
    created = " ".join(i.argument for i in final_stage() if i.keyword == "RUN")
    assert f"--uid {uid}" in created


def test_entrypoint_and_cmd_are_exec_form_and_start_the_server() -> None:
    entrypoint = _only("ENTRYPOINT").exec_form()
    command = _only("CMD").exec_form()
    assert entrypoint is not None and command is not None, (
        "shell form would not get SIGTERM"
    )
    assert entrypoint[0] == "guardrail"
    argv = entrypoint[1:] + command
    assert build_parser().parse_args(argv).command == "serve"


def test_stop_signal_is_sigterm() -> None:
    stop = [i.argument for i in final_stage() if i.keyword == "STOPSIGNAL"]
    assert stop in ([], ["SIGTERM"])


def test_healthcheck_runs_guardrail_health_on_the_grpc_port() -> None:
    check = _only("HEALTHCHECK").argument
    options, _, command = check.partition("CMD ")
    assert "--interval" in options and "--timeout" in options
    argv = Instruction("CMD", command).exec_form()
    assert argv is not None
    # ["sh", "-c", "exec guardrail health --target 127.0.0.1:${GUARDRAIL_PORT:-50051}"]
    words = shlex.split(argv[-1]) if argv[0] == "sh" else argv
    words = words[words.index("guardrail") + 1 :]
    target = words[words.index("--target") + 1]
    host, _, port = target.partition(":")
    assert host == "127.0.0.1"
    assert port in (str(GRPC_PORT), f"${{GUARDRAIL_PORT:-{GRPC_PORT}}}")
    parsed = build_parser().parse_args([w.replace(port, str(GRPC_PORT)) for w in words])
    assert parsed.command == "health"


def test_exposes_the_settings_default_ports() -> None:
    exposed = {int(p.split("/")[0]) for p in _only("EXPOSE").argument.split()}
    assert exposed == {GRPC_PORT, METRICS_PORT}


def test_env_names_are_settings() -> None:
    env = dockerfile_env()
    for name in env:
        if name.startswith("GUARDRAIL_"):
            assert setting_field(name) is not None, name
    assert env["GUARDRAIL_DATABASE_URL"].startswith("sqlite:////var/lib/guardrail/")


def test_copied_sources_exist() -> None:
    for ins in dockerfile():
        if ins.keyword == "COPY" and not ins.argument.startswith("--from"):
            *sources, _destination = ins.argument.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_the_journal_directory_belongs_to_the_user() -> None:
    journal = dockerfile_env()["GUARDRAIL_SPEND_LOG_JOURNAL_PATH"]
    uid = _only("USER").argument.split(":")[0]
    created = " ".join(i.argument for i in final_stage() if i.keyword == "RUN")
    assert f"install -d -o {uid} -g {uid} -m 0750 {journal}" in created
