"""botocore's own check of a CreateCompilationJob request, against SageMaker's service model.

The request pre-flight (:mod:`neobuild.preflight`) asks :func:`validate_request_with_botocore`
for botocore's verdict; :func:`warm_validator` loads the service model ahead of time (a
background thread while exports run). Needs botocore only, a core dependency: no boto3,
no credentials, no network.

One of the three modules that import botocore (with :mod:`neobuild.aws` and
:mod:`neobuild.awserrors`), and only inside functions, so that importing this one stays
cheap.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Mapping
from typing import Any

_SHAPE_LOCK = threading.Lock()


def _create_job_input_shape() -> Any:
    """CreateCompilationJob's input shape, loaded once a process (~0.4 s: botocore reads the
    whole SageMaker service model); parallel builds wait for one load instead of each
    doing it."""
    with _SHAPE_LOCK:
        return _load_create_job_input_shape()


@functools.lru_cache(maxsize=1)
def _load_create_job_input_shape() -> Any:
    from botocore.session import get_session

    service = get_session().get_service_model("sagemaker")
    return service.operation_model("CreateCompilationJob").input_shape


def warm_validator() -> None:
    """Load what :func:`validate_request_with_botocore` needs, e.g. on a background thread
    while exports run; a missing botocore is left for the validation to report."""
    with contextlib.suppress(ImportError):
        import botocore.validate  # noqa: F401 - imported for its cost, now

        _create_job_input_shape()


def validate_request_with_botocore(request: Mapping[str, Any]) -> list[str]:
    """Check a CreateCompilationJob request with botocore's own client-side validator.

    botocore checks types, required members, unknown keys and minimum lengths/values
    (not patterns, maxima or enums: NEO_REFERENCE §1.2). An unknown key can also mean
    the installed botocore predates the field.

    Args:
        request: the request as it would be passed to ``create_compilation_job(**request)``.

    Returns:
        One sentence per problem; empty when botocore accepts the request.
    """
    import botocore
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(dict(request), _create_job_input_shape())
    if not report.has_errors():
        return []
    problems = [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    return [
        f"{p} (if it is a real API field, botocore {botocore.__version__} is too old: upgrade boto3)"
        if p.startswith("Unknown parameter")
        else p
        for p in problems
    ]
