"""Check every Batch request before it is sent: botocore's own service model, then the limits
that the model does not encode (array size, dependencies, retry entries, timeout, tags).

A request that fails here never reaches AWS, so a typo costs a message, not a half-submitted
array.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from tessera.engine.batch import contract as c
from tessera.engine.errors import BatchRequestError


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("batch")


def validate_request(operation: str, params: Mapping[str, Any]) -> None:
    """Validate ``params`` of the Batch API ``operation`` (``SubmitJob``, ...). Raises
    ``BatchRequestError`` with botocore's report and every limit that is broken."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = _service_model().operation_model(operation).input_shape
    problems: list[str] = []
    try:
        validate_parameters(dict(params), shape)
    except ParamValidationError as exc:
        problems.append(str(exc.kwargs.get("report", exc)).strip())
    problems.extend(limit_problems(operation, params))
    if problems:
        raise BatchRequestError(f"{operation} request is invalid: " + "; ".join(problems))


def limit_problems(operation: str, params: Mapping[str, Any]) -> list[str]:
    """Batch limits broken by a request that botocore's model does not check (pure)."""
    out: list[str] = []
    size = _get(params, "arrayProperties", "size")
    if isinstance(size, int) and not c.MIN_ARRAY_SIZE <= size <= c.MAX_ARRAY_SIZE:
        out.append(
            f"arrayProperties.size = {size:,}; Batch array jobs have "
            f"{c.MIN_ARRAY_SIZE}-{c.MAX_ARRAY_SIZE:,} children"
        )
    depends = params.get("dependsOn")
    if isinstance(depends, list) and len(depends) > c.MAX_DEPENDS_ON:
        out.append(f"dependsOn has {len(depends)} jobs; Batch allows at most {c.MAX_DEPENDS_ON}")
    if isinstance(depends, list):
        for dep in depends:
            if isinstance(dep, Mapping) and dep.get("type") not in (None, "N_TO_N", "SEQUENTIAL"):
                out.append(f"dependsOn type {dep.get('type')!r}; expected N_TO_N or SEQUENTIAL")
    out.extend(_retry_problems(params.get("retryStrategy")))
    seconds = _get(params, "timeout", "attemptDurationSeconds")
    if isinstance(seconds, int) and seconds < c.MIN_TIMEOUT_S:
        out.append(f"timeout.attemptDurationSeconds = {seconds}; Batch needs >= {c.MIN_TIMEOUT_S}")
    tags = params.get("tags")
    if isinstance(tags, Mapping) and len(tags) > c.MAX_TAGS:
        out.append(f"{len(tags)} tags; Batch allows at most {c.MAX_TAGS}")
    if operation == "RegisterJobDefinition":
        out.extend(_definition_problems(params))
    return out


def _retry_problems(strategy: Any) -> list[str]:
    if not isinstance(strategy, Mapping):
        return []
    out: list[str] = []
    attempts = strategy.get("attempts")
    if isinstance(attempts, int) and not c.MIN_ATTEMPTS <= attempts <= c.MAX_ATTEMPTS:
        out.append(
            f"retryStrategy.attempts = {attempts}; expected {c.MIN_ATTEMPTS}-{c.MAX_ATTEMPTS}"
        )
    rules = strategy.get("evaluateOnExit")
    if isinstance(rules, list):
        if len(rules) > c.MAX_EVALUATE_ON_EXIT:
            out.append(
                f"retryStrategy.evaluateOnExit has {len(rules)} entries; Batch allows at most "
                f"{c.MAX_EVALUATE_ON_EXIT}"
            )
        for i, rule in enumerate(rules):
            if not isinstance(rule, Mapping):
                continue
            if str(rule.get("action", "")).upper() not in ("RETRY", "EXIT"):
                out.append(f"evaluateOnExit[{i}].action {rule.get('action')!r}: RETRY or EXIT")
            code = rule.get("onExitCode")
            if isinstance(code, str) and not _exit_code_pattern(code):
                out.append(
                    f"evaluateOnExit[{i}].onExitCode {code!r}: digits, optionally ending in *"
                )
            for key in ("onExitCode", "onReason", "onStatusReason"):
                value = rule.get(key)
                if isinstance(value, str) and len(value) > 512:
                    out.append(f"evaluateOnExit[{i}].{key} is over 512 characters")
    return out


def _exit_code_pattern(code: str) -> bool:
    body = code[:-1] if code.endswith("*") else code
    return body.isdigit() or (code == "*")


def _definition_problems(params: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    props = params.get("containerProperties")
    if not isinstance(props, Mapping):
        return out
    platforms = params.get("platformCapabilities") or ["EC2"]
    kinds = {
        r.get("type"): r.get("value")
        for r in props.get("resourceRequirements", [])
        if isinstance(r, Mapping)
    }
    if "FARGATE" in platforms:
        if "GPU" in kinds:
            out.append("GPU resources are not available on Fargate")
        if not props.get("executionRoleArn"):
            out.append("Fargate job definitions need containerProperties.executionRoleArn")
    else:
        vcpu = kinds.get("VCPU")
        if isinstance(vcpu, str) and not vcpu.isdigit():
            out.append(f"VCPU = {vcpu!r}; EC2 resources take a whole number of vCPUs")
    return out


def _get(params: Mapping[str, Any], *keys: str) -> Any:
    value: Any = params
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
