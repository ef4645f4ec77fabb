"""oneDNN's ISA cap hides bfloat16 from the project's detection, so ``auto`` picks what it would on a CPU without it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from framewatch.processing.framing import embed

CAP_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A CPU that has bfloat16, with no cap set."""
    for var in CAP_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(embed, "_cpu_bfloat16", lambda: True)
    return monkeypatch


def test_without_a_cap_the_cpu_decides(bf16_cpu: pytest.MonkeyPatch) -> None:
    assert embed.native_bfloat16() is True
    assert embed.resolve_precision("auto") == "bfloat16"
    bf16_cpu.setattr(embed, "_cpu_bfloat16", lambda: False)
    assert embed.resolve_precision("auto") == "float32"


@pytest.mark.parametrize("var", CAP_VARS)
@pytest.mark.parametrize("cap", ["AVX512_CORE_VNNI", "avx512_core_vnni", "AVX2", " AVX512_CORE "])
def test_a_cap_without_bfloat16_hides_it(bf16_cpu: pytest.MonkeyPatch, var: str, cap: str) -> None:
    bf16_cpu.setenv(var, cap)
    assert embed.native_bfloat16() is False
    assert embed.resolve_precision("auto") == "float32"
    assert embed.resolve_precision("bfloat16") == "bfloat16"  # asked explicitly: still honoured (emulated)


@pytest.mark.parametrize("cap", ["AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL", "DEFAULT", ""])
def test_a_cap_that_keeps_bfloat16_changes_nothing(bf16_cpu: pytest.MonkeyPatch, cap: str) -> None:
    bf16_cpu.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert embed.native_bfloat16() is True
    assert embed.resolve_precision("auto") == "bfloat16"


def test_a_process_started_with_the_cap_resolves_auto_to_float32() -> None:
    """The real module in a fresh process, nothing patched: the cap alone decides."""
    code = "from framewatch.processing.framing.embed import resolve_precision as r; print(r('auto'))"
    env_cap = subprocess.run([sys.executable, "-c", code], env={**_env(), "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
                             capture_output=True, text=True, check=True, timeout=120)
    assert env_cap.stdout.strip() == "float32"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CAP_VARS}
