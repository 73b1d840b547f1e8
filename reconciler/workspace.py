"""Where things are: the workspace root, its manifests and its state file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.manifest.loader import Manifests, load
from reconciler.state import State


@dataclass(frozen=True)
class Workspace:
    root: Path
    manifests_path: Path
    state_path: Path

    @classmethod
    def at(cls, root: str | Path = ".", manifests: str | Path | None = None,
           state: str | Path | None = None) -> "Workspace":
        root = Path(root)
        return cls(
            root=root,
            manifests_path=Path(manifests) if manifests else root / "manifests",
            state_path=Path(state) if state else root / "state" / "reconciler.db",
        )

    def manifests(self) -> Manifests:
        return load(self.manifests_path)

    def state(self, create: bool = False) -> State:
        """The state; without ``create`` a missing file reads as an empty state."""
        return State(self.state_path, create=create)
