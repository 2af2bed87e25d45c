"""The operator's settings: one model, fed by LRSWEEP_* environment variables (Helm sets them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LRSWEEP_", extra="ignore", frozen=True)

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch (comma-separated); empty: the operator's own.",
    )
    clusterwide: bool = Field(False, description="Watch LRSweeps in every namespace.")
    reconcile_interval: float = Field(2.0, gt=0, description="Seconds between reconciles.")
    max_concurrent_reconciles: int = Field(
        32, gt=0, description="Sweeps reconciled at once (the rest wait their turn)."
    )
    scrape_timeout: float = Field(2.0, gt=0, description="Timeout of one metrics scrape.")
    gate_timeout: float = Field(
        300.0, ge=0, description="Seconds a trial paused at a rung waits for a decision."
    )
    progress_deadline_seconds: float = Field(
        1800.0,
        gt=0,
        description="Seconds a running trial's step may stand still (pauses at rungs "
        "included) before its attempt fails as hung and is retried; above gate_timeout.",
    )
    progress_write_interval: float = Field(
        10.0,
        ge=0,
        description="Seconds between status writes that only move running trials on (their "
        "step, verdict and reason); what the sweep decides is written at once. 0: every "
        "change is written.",
    )
    stop_grace_seconds: int = Field(10, ge=0, description="Grace period of a stopped trial.")
    start_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="Seconds a scheduled trial pod may fail to pull its image before its "
        "attempt fails.",
    )
    metrics_port: int = Field(8080, ge=0, le=65535, description="Operator /metrics; 0: off.")
    health_port: int = Field(8081, ge=0, le=65535, description="Liveness /healthz; 0: off.")
    pod_namespace: str = Field("default", description="Where the operator runs (downward API).")

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @model_validator(mode="after")
    def _one_scope(self) -> OperatorSettings:
        if self.clusterwide and self.namespaces:
            raise ValueError(
                "LRSWEEP_CLUSTERWIDE=true watches every namespace, and LRSWEEP_NAMESPACES "
                f"names {', '.join(self.namespaces)}: set one of the two"
            )
        return self

    @model_validator(mode="after")
    def _deadline_above_gate(self) -> OperatorSettings:
        if self.progress_deadline_seconds <= self.gate_timeout:
            raise ValueError(
                f"LRSWEEP_PROGRESS_DEADLINE_SECONDS ({self.progress_deadline_seconds:g}) must "
                f"exceed LRSWEEP_GATE_TIMEOUT ({self.gate_timeout:g}): a trial paused at a "
                "rung makes no progress while it waits"
            )
        return self

    def watched_namespaces(self) -> list[str]:
        """kopf's `namespaces=`: none when cluster-wide (kopf refuses both), else the
        namespaces named, else the operator's own."""
        if self.clusterwide:
            return []
        return self.namespaces or [self.pod_namespace]
