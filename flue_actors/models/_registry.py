"""Resolving ``provider/model`` strings to providers, with the ``FLUE_MODEL`` override."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ModelNotResolvedError
from ._anthropic import AnthropicProvider
from ._base import ModelProvider
from ._batched_provider import MessageBatchesProvider
from ._echo import FakeProvider
from ._limits import LimitedProvider, RateLimiter
from ._message_batches import ModelBatches, TurnBatcher
from ._meter import MeteredProvider, UsageMeter
from ._retry import RetryPolicy

__all__ = ["ModelRegistry", "ResolvedModel"]


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    provider: ModelProvider
    model_id: str
    requested: str

    @property
    def provider_name(self) -> str:
        return self.provider.name


def _split(model: str) -> tuple[str, str]:
    provider, _, model_id = model.partition("/")
    if not provider or not model_id:
        raise ModelNotResolvedError(model=model, reason="write it as 'provider/model-id'")
    return provider, model_id


class ModelRegistry:
    """Providers by name. ``override`` (a model string, or a provider that takes every request)
    replaces every agent's model: ``FLUE_MODEL`` sets it from the environment.

    ``anthropic`` and ``fake`` are built in; the Anthropic provider reads its key at its first
    call, so building a registry never needs one. ``retry`` is how sessions retry transient
    model errors with these providers. ``limiter`` paces every call (a batch's shared rate
    limits); ``meter`` counts the usage of every call answered (a batch's token and cost totals).

    With ``model_batches``, every turn of an ``anthropic/...`` model goes through the Message
    Batches API (:class:`MessageBatchesProvider` around the registered Anthropic provider),
    collected by ``batcher`` (default: a collector of this process)."""

    def __init__(
        self,
        providers: Mapping[str, ModelProvider] | None = None,
        *,
        override: str | ModelProvider | None = None,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        model_batches: ModelBatches | None = None,
        batcher: TurnBatcher | None = None,
        meter: UsageMeter | None = None,
    ) -> None:
        self._providers: dict[str, ModelProvider] = {
            "fake": FakeProvider(),
            "anthropic": AnthropicProvider(),
        }
        self._providers.update(providers or {})
        self._override = override
        self.retry = retry or RetryPolicy()
        # Every provider's calls pass through it (a batch's shared rate limits), when set.
        self.limiter = limiter
        self.meter = meter
        self._wrapped: dict[int, ModelProvider] = {}
        self.model_batches = model_batches
        if model_batches is not None:
            plain = self._providers["anthropic"]
            if isinstance(plain, MessageBatchesProvider):
                plain = plain.messages
            if not isinstance(plain, AnthropicProvider):
                raise ValueError(
                    "model_batches needs the Anthropic provider registered as 'anthropic', "
                    f"not {type(plain).__name__}"
                )
            self._providers["anthropic"] = MessageBatchesProvider(
                plain, model_batches, batcher=batcher
            )
        elif batcher is not None:
            raise ValueError("a batcher without model_batches would never be used")

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        model_batches: ModelBatches | None = None,
    ) -> ModelRegistry:
        environ = os.environ if environ is None else environ
        return cls(override=environ.get("FLUE_MODEL") or None, model_batches=model_batches)

    def with_model_batches(
        self, model_batches: ModelBatches, *, batcher: TurnBatcher | None = None
    ) -> ModelRegistry:
        """A registry with these providers whose Anthropic turns go through message batches
        (a batch invocation's runs use one while other runs keep the Messages API)."""
        return ModelRegistry(
            self._providers,
            override=self._override,
            retry=self.retry,
            limiter=self.limiter,
            model_batches=model_batches,
            batcher=batcher,
            meter=self.meter,
        )

    @property
    def batcher(self) -> TurnBatcher | None:
        """The batcher its Anthropic turns go through (``None`` without model batches)."""
        provider = self._providers.get("anthropic")
        return provider.batcher if isinstance(provider, MessageBatchesProvider) else None

    def register(self, provider: ModelProvider) -> None:
        self._providers[provider.name] = provider

    async def aclose(self) -> None:
        """Close the providers that hold connections (those with an ``aclose``, such as the
        Anthropic provider's SDK client); each opens again if used afterwards."""
        providers = [*self._providers.values()]
        if self._override is not None and not isinstance(self._override, str):
            providers.append(self._override)
        for provider in providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    def _paced(self, provider: ModelProvider) -> ModelProvider:
        if self.limiter is None and self.meter is None:
            return provider
        wrapped = self._wrapped.get(id(provider))
        if wrapped is None:
            wrapped = provider
            if self.limiter is not None:
                wrapped = LimitedProvider(wrapped, self.limiter)
            if self.meter is not None:
                wrapped = MeteredProvider(wrapped, self.meter)
            self._wrapped[id(provider)] = wrapped
        return wrapped

    def prepare(self, models: Iterable[str]) -> list[str]:
        """Have the providers that ``models`` (or the override) resolve to get ready for their
        first call now (those with a ``prepare``: the Anthropic provider imports its SDK and
        makes its client), so that a process about to take work pays for it before, not in
        its first run. Returns their names; a model no provider answers is left to fail when
        it is used."""
        override = self._override
        providers: list[ModelProvider] = []
        if override is not None and not isinstance(override, str):
            providers.append(override)
        else:
            for model in [override] if isinstance(override, str) else sorted(models):
                with contextlib.suppress(ModelNotResolvedError):
                    provider = self._provider(model)[0]
                    if all(provider is not known for known in providers):
                        providers.append(provider)
        prepared: list[str] = []
        for provider in providers:
            prepare = getattr(provider, "prepare", None)
            if prepare is not None:
                prepare()
                prepared.append(provider.name)
        return prepared

    def _provider(self, model: str) -> tuple[ModelProvider, str, str]:
        """The provider a model string names (``FLUE_MODEL``'s, when set), the model id, and
        the model string it came from."""
        override = self._override
        wanted = override if isinstance(override, str) else model
        provider_name, model_id = _split(wanted)
        provider = self._providers.get(provider_name)
        if provider is None:
            raise ModelNotResolvedError(
                model=wanted,
                reason=f"no provider named {provider_name!r} is registered "
                f"(registered: {', '.join(sorted(self._providers))}); "
                "set FLUE_MODEL=fake/echo for a dry run",
            )
        return provider, model_id, wanted

    def resolve(self, model: str) -> ResolvedModel:
        override = self._override
        if override is not None and not isinstance(override, str):
            return ResolvedModel(
                provider=self._paced(override), model_id=_split(model)[1], requested=model
            )
        provider, model_id, wanted = self._provider(model)
        return ResolvedModel(provider=self._paced(provider), model_id=model_id, requested=wanted)
