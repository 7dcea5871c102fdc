"""containers/: the Dockerfiles pass hadolint, the CloudFormation template passes cfn-lint, the
IAM policy passes parliament, and the template's job role is that policy. (No Docker engine
here: the images are linted, not built.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS = ROOT / "containers"
BIN = Path(sys.executable).parent
POLICY = CONTAINERS / "iam" / "job-role-policy.json"
TEMPLATE = CONTAINERS / "cloudformation" / "batch.yaml"


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


# The CPU image has two stages (build, then a runtime without compilers); the GPU image is one
# layer of CUDA wheels on top of it.
@pytest.mark.parametrize(("dockerfile", "stages"), [("Dockerfile", 2), ("Dockerfile.gpu", 1)])
def test_dockerfiles_pass_hadolint(dockerfile: str, stages: int) -> None:
    # Every ignored rule is explained in a comment next to its `# hadolint ignore=` line.
    proc = _tool("hadolint", str(CONTAINERS / dockerfile))
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
    text = (CONTAINERS / dockerfile).read_text()
    assert 'ENTRYPOINT ["tessera"]' in text and "USER 10001" in text
    assert text.count("\nFROM ") == stages
    for line_no, line in enumerate(text.splitlines()):
        if line.startswith("# hadolint ignore="):
            rule = line.split("=", 1)[1]
            before = "\n".join(text.splitlines()[max(0, line_no - 3) : line_no])
            assert rule in before, f"{dockerfile}: ignore of {rule} without an explanation"


def test_hadolint_would_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install numpy\nUSER root\n")
    assert _tool("hadolint", str(bad)).returncode != 0


def test_dockerignore_keeps_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") + 1 :][:4] == [
        "!pyproject.toml",
        "!README.md",
        "!engine/",
        "!kernels/",
    ]


def test_template_passes_cfn_lint() -> None:
    proc = _tool("cfn-lint", "--include-checks", "I", "--", str(TEMPLATE))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_template_has_spot_ce_on_demand_fallback_queue_role_and_logs() -> None:
    template = _load_template()
    resources = template["Resources"]
    spot = resources["SpotComputeEnvironment"]["Properties"]["ComputeResources"]
    assert spot["Type"] == "SPOT" and spot["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert spot["MaxvCpus"] == "SpotMaxvCpus"  # a cap, from a parameter
    on_demand = resources["OnDemandComputeEnvironment"]["Properties"]["ComputeResources"]
    assert on_demand["Type"] == "EC2"
    order = resources["JobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    assert [o["ComputeEnvironment"] for o in order] == [
        "SpotComputeEnvironment",
        "OnDemandComputeEnvironment",
    ]
    assert resources["LogGroup"]["Type"] == "AWS::Logs::LogGroup"
    assert resources["JobRole"]["Type"] == "AWS::IAM::Role"


def test_policy_passes_parliament_and_is_the_template_job_role() -> None:
    from parliament import analyze_policy_string

    text = POLICY.read_text()
    policy = analyze_policy_string(text, include_community_auditors=True)
    assert [(f.issue, f.detail) for f in policy.findings] == []
    # parliament does look: the same policy with a bucket-level action on objects is flagged
    wrong = json.loads(text)
    wrong["Statement"][3]["Action"] = "s3:PutBucketPolicy"
    assert analyze_policy_string(json.dumps(wrong)).findings

    statements = json.loads(text)["Statement"]
    actions = {a for s in statements for a in _list(s["Action"])}
    assert actions == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    assert all("*" not in s["Resource"].split(":::")[1].split("/")[0] for s in statements)
    role = _load_template()["Resources"]["JobRole"]["Properties"]
    (inline,) = role["Policies"]
    in_template = json.dumps(inline["PolicyDocument"]["Statement"]).replace(
        "${AWS::Partition}", "aws"
    )
    assert json.loads(in_template) == statements


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _load_template() -> Any:
    """The template as data; CloudFormation tags (!Ref X, !Sub s, !GetAtt a.b) become their
    argument."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    Loader.add_multi_constructor("!", tag)
    return yaml.load(TEMPLATE.read_text(), Loader=Loader)
