"""Counting SASS: a kernel's instructions by class and its loops, from the cubin that triton compiles, disassembled
with the `nvdisasm` that triton ships (the static performance model's measuring tool, docs/bigla.md)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CLASSES = {
    "mma": ("HMMA", "HGMMA", "IMMA"),
    "shfl": ("SHFL",),
    "mufu": ("MUFU",),
    "fp32": ("FFMA", "FMUL", "FADD", "FSEL", "FMNMX", "FSETP", "FSET"),
    "global": ("LDG", "STG", "LDGSTS", "RED", "ATOM", "ATOMG"),
    "shared": ("LDS", "STS", "LDSM", "STSM"),
    "barrier": ("BAR",),
}
_INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)(\S*)\s*(.*)$")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


@dataclass(frozen=True)
class Sass:
    """A kernel's instructions (opcode and operands, NOPs left out) and its loops as (first, last) indices."""

    opcodes: tuple[str, ...]
    loops: tuple[tuple[int, int], ...]

    @staticmethod
    def parse(text: str) -> Sass:
        opcodes, labels, branches = [], {}, []
        for line in text.splitlines():
            if label := _LABEL.match(line):
                labels[label.group(1)] = len(opcodes)
            elif found := _INSTRUCTION.match(line):
                opcode = found.group(1)
                if opcode == "NOP":
                    continue
                if opcode == "BRA" and (target := _TARGET.search(found.group(3))):
                    branches.append((len(opcodes), target.group(1)))
                opcodes.append(opcode)
        loops = tuple((labels[t], i) for i, t in branches if t in labels and labels[t] < i)
        return Sass(tuple(opcodes), loops)

    def classes(self, first: int = 0, last: int | None = None) -> dict[str, int]:
        counts = dict.fromkeys([*CLASSES, "other"], 0)
        for opcode in self.opcodes[first : None if last is None else last + 1]:
            name = next((c for c, prefixes in CLASSES.items() if opcode in prefixes), "other")
            counts[name] += 1
        return counts

    def prologue(self) -> int:
        """Instructions up to the first exit or branch: what a program issues when it returns at once."""
        return next((i + 1 for i, op in enumerate(self.opcodes) if op in ("EXIT", "BRA")), len(self.opcodes))


def disassemble(cubin: bytes) -> str:
    import triton

    nvdisasm = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        return subprocess.run([str(nvdisasm), "-c", file.name], capture_output=True, text=True, check=True).stdout


@dataclass
class Cost:
    """Warp-instructions per token and head by class, and HBM bytes per token and head."""

    instructions: dict[str, float] = field(default_factory=lambda: dict.fromkeys([*CLASSES, "other"], 0.0))
    bytes: float = 0.0

    def add(self, counts: dict[str, int], scale: float) -> None:
        for name, count in counts.items():
            self.instructions[name] += count * scale

    @property
    def total(self) -> float:
        return sum(self.instructions.values())
