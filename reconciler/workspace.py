"""Where things are: the workspace root, its manifests and its state (a SQLite file
under ``DIR/state/`` by default, or a PostgreSQL URL)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.manifest.loader import Manifests, load
from reconciler.state import State
from reconciler.state.location import Location


@dataclass(frozen=True)
class Workspace:
    root: Path
    manifests_path: Path
    state_location: Location

    @classmethod
    def at(cls, root: str | Path = ".", manifests: str | Path | None = None,
           state: str | Path | None = None, state_schema: str | None = None) -> "Workspace":
        root = Path(root)
        return cls(
            root=root,
            manifests_path=Path(manifests) if manifests else root / "manifests",
            state_location=Location.parse(state if state else root / "state" / "reconciler.db", state_schema),
        )

    @property
    def state_path(self) -> Path | None:
        """The SQLite state file (None for a PostgreSQL state)."""
        return self.state_location.path

    @property
    def backups(self) -> Path:
        """Where ``state rm`` keeps what it removed: beside a SQLite state, else
        under the workspace's ``state/``."""
        base = self.state_path.parent if self.state_path is not None else self.root / "state"
        return base / "backups"

    def manifests(self) -> Manifests:
        return load(self.manifests_path)

    def state(self, create: bool = False) -> State:
        """The state: read-only (a missing one reads as empty), or for writing with
        ``create`` (made if missing)."""
        return State(self.state_location, create=create)
