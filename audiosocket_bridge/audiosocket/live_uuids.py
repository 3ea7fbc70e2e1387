"""The UUIDs of the calls in progress: a second connection with a live call's UUID is refused."""
from __future__ import annotations


class LiveUuids:
    def __init__(self) -> None:
        self._uuids: set[str] = set()

    def claim(self, uuid: str) -> bool:
        """True if `uuid` was free and is now this connection's; False if a live call has it."""
        if uuid in self._uuids:
            return False
        self._uuids.add(uuid)
        return True

    def release(self, uuid: str) -> None:
        self._uuids.discard(uuid)
