"""An OpenFeature provider over the SDK client: local evaluation with OpenFeature's
reasons, variants, error codes and flag metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
from openfeature.provider import AbstractProvider, Metadata

from mechanisms.flags.domain import ERROR, standard_reason
from mechanisms.sdk.client import FlagsClient


def _context(evaluation_context: EvaluationContext | None) -> dict[str, Any]:
    if evaluation_context is None:
        return {}
    context = dict(evaluation_context.attributes)
    if evaluation_context.targeting_key is not None:
        context["targetingKey"] = evaluation_context.targeting_key
    return context


class MechanismsProvider(AbstractProvider):
    def __init__(self, client: FlagsClient) -> None:
        self.client = client

    def get_metadata(self) -> Metadata:
        return Metadata(name="mechanisms")

    def shutdown(self) -> None:
        self.client.close()

    def _resolve(
        self,
        key: str,
        default: Any,
        context: EvaluationContext | None,
        flag_type: str,
        numeric: type | None = None,
    ) -> FlagResolutionDetails[Any]:
        result = self.client.evaluate(key, _context(context), flag_type)
        metadata = {
            k: v for k, v in result.metadata.items() if isinstance(v, str | int | float | bool)
        }
        if result.rule_id:
            metadata["ruleId"] = result.rule_id
        if result.is_error:
            return FlagResolutionDetails(
                value=default,
                reason=ERROR,
                error_code=ErrorCode(result.error_code),
                error_message=result.error_message,
                flag_metadata=metadata,
            )
        value = result.value
        # OpenFeature's integer and float calls want exactly that Python type back.
        if numeric is int and not float(value).is_integer():
            return FlagResolutionDetails(
                value=default,
                reason=ERROR,
                error_code=ErrorCode.TYPE_MISMATCH,
                error_message=f"{key} served {value!r}, not an integer",
                flag_metadata=metadata,
            )
        if numeric is not None:
            value = numeric(value)
        reason = standard_reason(result.reason)
        if reason != result.reason:
            metadata["reasonDetail"] = result.reason
        return FlagResolutionDetails(
            value=value, variant=result.variant, reason=reason, flag_metadata=metadata
        )

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(
            flag_key,
            default_value,
            evaluation_context,
            "number",
            int,
        )

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, "number", float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, "object")
