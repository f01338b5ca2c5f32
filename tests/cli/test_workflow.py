"""The GitHub workflow users of the repository run: valid YAML, the services the architecture names,
the README's test command, and a gate whose steps fail on drift and on lint findings."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from sovren_db.cli.main import COMMANDS, cli
from tests.lint.conftest import HEAD, lint_project  # noqa: F401  (the lint tests' project copy)

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
IMAGES = {"postgres": "postgres:14", "redis": "redis:7", "mongo": "mongo:6"}
HEALTH = {"postgres": "pg_isready", "redis": "redis-cli ping", "mongo": "mongosh"}
GATE = [("migrate",), ("check", "--format", "github"), ("lint", "--format", "github"), ("seed", "--profile", "ci")]


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def steps_running(job: dict, command: str) -> list[dict]:
    return [s for s in job["steps"] if command in s.get("run", "")]


def sovren_db_steps(job: dict) -> list[tuple[dict, list[str]]]:
    found = []
    for step in job["steps"]:
        run = step.get("run", "").strip()
        if run.startswith("sovren-db "):
            found.append((step, shlex.split(run)[1:]))
    return found


def test_workflow_is_valid_yaml_with_triggers_and_jobs(workflow):
    assert workflow["name"]
    assert {"push", "pull_request"} <= set(triggers(workflow))
    assert set(workflow["jobs"]) == {"test", "gate"}
    for job in workflow["jobs"].values():
        assert job["runs-on"].startswith("ubuntu") and job["timeout-minutes"] > 0
        assert all(("uses" in step) != ("run" in step) for step in job["steps"]), "a step uses or runs"


@pytest.mark.parametrize("job_name", ["test", "gate"])
def test_services_are_the_architecture_servers_with_health_checks(workflow, job_name):
    services = workflow["jobs"][job_name]["services"]
    assert {name: s["image"] for name, s in services.items()} == IMAGES
    for name, service in services.items():
        options = service["options"]
        assert re.search(r"--health-cmd\s+\"[^\"]*" + re.escape(HEALTH[name]), options), options
        for flag in ("--health-interval", "--health-timeout", "--health-retries"):
            assert flag in options
    assert services["postgres"]["env"] == {"POSTGRES_USER": "sovren", "POSTGRES_PASSWORD": "securepass",
                                           "POSTGRES_DB": "sovren_ai"}


def test_urls_point_at_the_services(workflow):
    env = workflow["env"]
    services = workflow["jobs"]["test"]["services"]
    published = {name: {int(str(p).split(":")[0]) for p in s["ports"]} for name, s in services.items()}
    postgres = urlsplit(env["POSTGRES_URL"])
    credentials = services["postgres"]["env"]
    assert (postgres.username, postgres.password, postgres.path.strip("/")) == (
        credentials["POSTGRES_USER"], credentials["POSTGRES_PASSWORD"], credentials["POSTGRES_DB"])
    for name, var in (("postgres", "POSTGRES_URL"), ("redis", "REDIS_URL"), ("mongo", "MONGO_URL")):
        url = urlsplit(env[var])
        assert url.hostname == "localhost" and url.port in published[name], var


def test_python_311_with_pip_cache(workflow):
    for job in workflow["jobs"].values():
        [setup] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert str(setup["with"]["python-version"]) == "3.11"
        assert setup["with"]["cache"] == "pip"


def test_test_job_runs_the_readme_test_command(workflow):
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    job = workflow["jobs"]["test"]
    assert [s["run"] for s in steps_running(job, "make test")] == ["make test"]
    assert "MONGO_URL" in workflow["env"], "the Mongo tests run only when MONGO_URL is set"


def test_gate_runs_migrate_check_lint_seed_in_order_and_fails_on_their_exit_codes(workflow):
    job = workflow["jobs"]["gate"]
    commands = sovren_db_steps(job)
    assert [tuple(a for a in args if not a.startswith("--base") and "steps.base" not in a)
            for _, args in commands] == GATE
    for step, args in commands:
        assert not step.get("continue-on-error"), step
        assert "||" not in step["run"] and "|" not in step["run"], "nothing may mask the exit code"
        assert args[0] in COMMANDS
    lint_step = next(step for step, args in commands if args[0] == "lint")
    assert "--base" in lint_step["run"] and "steps.base.outputs.revision" in lint_step["run"]


@pytest.mark.parametrize("command", ["check", "lint"])
def test_gate_options_exist_on_the_commands(command):
    help_text = CliRunner().invoke(cli, [command, "--help"]).output
    assert "--format" in help_text and "github" in help_text
    if command == "lint":
        assert "--base" in help_text


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash to check the script's syntax")
def test_base_revision_script_is_valid_bash(workflow):
    [step] = [s for s in workflow["jobs"]["gate"]["steps"] if s.get("id") == "base"]
    script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "GITHUB_OUTPUT" in step["run"]


def gate_lint_args(workflow, base: str) -> list[str]:
    [lint_step] = [s for s in workflow["jobs"]["gate"]["steps"] if "sovren-db lint" in s.get("run", "")]
    run = lint_step["run"].replace("${{ steps.base.outputs.revision }}", base)
    return shlex.split(run)[1:]


def test_gate_lint_step_fails_on_findings_and_passes_clean(workflow, lint_project):
    lint_project.add_revision("op.add_column('users', sa.Column('nickname', sa.Text()))")
    clean = CliRunner().invoke(cli, gate_lint_args(workflow, HEAD))
    assert clean.exit_code == 0, clean.output
    lint_project.add_revision("op.mongo_drop_collection(collection='executives')")
    failing = CliRunner().invoke(cli, gate_lint_args(workflow, HEAD))
    assert failing.exit_code == 1
    assert failing.output.startswith("::error file=migrations/versions/")


def test_test_job_puts_mongod_and_mongos_of_the_service_image_on_path_before_the_tests(workflow):
    job = workflow["jobs"]["test"]
    runs = [s.get("run", "") for s in job["steps"]]
    [binaries] = [i for i, run in enumerate(runs) if "docker cp" in run]
    assert binaries < runs.index("make test"), "the sharded-cluster tests need the binaries first"
    script = runs[binaries]
    image = job["services"]["mongo"]["image"]
    assert f"docker create {image}" in script
    assert all(tool in script for tool in ("mongod", "mongos"))
    # the step fails, not the tests skip, when the image has no mongod or mongos
    assert "set -euo pipefail" in script and "mongod --version" in script and "mongos --version" in script
