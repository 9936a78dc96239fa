"""Which keys the registry binds to a node id (an executor, an auditor).

A node registers its key the way an author does: ``cheng-registry register-key
--package:pkg://cheng/<name> --priv:<key file whose author_id is the node id>``. The keys of an id
are the current keys of every namespace it owns (after rotations), minus revoked keys. A receipt
is accepted only when its signing key is one of them, so a key that certifies itself (the
original lease token's flaw) never passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cheng_build.core.errors import PolicyError


class UnregisteredKeyError(PolicyError):
    """The key that signed is not registered to the id it signs for."""


@dataclass(slots=True)
class KeyBook:
    """Keys per node id, read once from a verified registry."""

    keys: dict[str, set[str]] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_registry(cls, path: str | os.PathLike[str], level: str = "L1") -> KeyBook:
        """Verify the registry through the project's one gate (``load_trusted_registry``: chain,
        signatures, ownership, revocation, checkpoints) and collect the keys of each id.

        Raises:
            NotFoundError: no registry at ``path``.
            UntrustedRegistryError / RegistryFormatError: the registry does not verify.
        """
        from cheng_build.trust.trusted import load_trusted_registry

        trusted = load_trusted_registry(Path(path), level)
        state = trusted.log.replay()
        book = cls(source=os.fspath(path))
        for owner in state.owners.values():
            if owner.pub_key and owner.pub_key not in state.revoked:
                book.keys.setdefault(owner.author_id, set()).add(owner.pub_key)
        return book

    def add(self, node_id: str, pub_key: str) -> None:
        """Bind ``pub_key`` to ``node_id`` (tests, and a node's own key)."""
        self.keys.setdefault(node_id, set()).add(pub_key)

    def check(self, node_id: str, pub_key: str) -> None:
        """Refuse ``pub_key`` unless the registry binds it to ``node_id``.

        Raises:
            UnregisteredKeyError: it does not.
        """
        if pub_key not in self.keys.get(node_id, ()):
            known = self.keys.get(node_id)
            raise UnregisteredKeyError(
                f"key {pub_key[:20]}... is not registered to {node_id}",
                why=(f"{node_id} has {len(known)} other registered key(s)" if known else
                     f"the registry {self.source or '(none)'} binds no key to {node_id}"),
                how=f"the node registers its key: cheng-registry register-key "
                    f"--package:pkg://cheng/<name> --priv:<key whose author_id is {node_id}>")
