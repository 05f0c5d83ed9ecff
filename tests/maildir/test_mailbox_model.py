"""Stateful property test: two Mailbox objects (two "hosts") on one folder, random
operations and injected NFS faults, checked against a model after every step.

The model knows every message ever created (by Message-ID) and which were
expunged. Invariants: a (UIDVALIDITY, UID) names one message forever; every
message not expunged is visible once to a view that synced; the two views agree
after both sync; NEXTUID never goes down.
"""

from __future__ import annotations

import errno
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from imapha.maildir.deliver import deliver
from imapha.maildir.fsops import FileSystem
from imapha.maildir.mailbox import Mailbox, MessageExpunged, StoreMode

MSGID = re.compile(rb"Message-ID: <([^>]+)>")
FLAGS = st.sets(st.sampled_from(["\\Seen", "\\Flagged", "\\Answered", "\\Deleted"]),
                max_size=2)
KEYWORDS = st.sets(st.sampled_from(["work", "$Label1", "x"]), max_size=2)
FAULT_OPS = st.sampled_from(["rename", "open", "link", "listdir"])
FAULT_ERRS = st.sampled_from([errno.ESTALE])


class TwoWriters(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="imapha-model-"))
        self.fs = [FileSystem(), FileSystem()]
        # A short lock timeout turns "waits for a lock nobody will release" into a
        # quick failure instead of a slow one.
        self.boxes = [Mailbox(self.dir / "M", fs=self.fs[0], create=True, lock_timeout=3),
                      Mailbox(self.dir / "M", fs=self.fs[1], lock_timeout=3)]
        self.counter = 0
        self.live: set[str] = set()  # created and not expunged
        self.uid_names: dict[tuple[int, int], str] = {}  # (validity, uid) -> msgid
        self.next_uid_seen = [0, 0]

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _new_message(self) -> tuple[str, bytes]:
        self.counter += 1
        msgid = f"{self.counter}@model"
        return msgid, f"Message-ID: <{msgid}>\r\n\r\nbody {self.counter}\r\n".encode()

    def _record(self, which: int) -> None:
        box = self.boxes[which]
        for msg in box.messages():
            try:
                found = MSGID.search(box.read(msg.uid))
            except MessageExpunged:
                continue
            assert found
            name = found.group(1).decode()
            key = (box.uid_validity, msg.uid)
            assert self.uid_names.setdefault(key, name) == name, f"UID {key} reused"

    def _inject(self, which: int, op: str, err: int, match: str, *, after: bool = False) -> None:
        # One pending fault per writer: the store's retries are bounded on purpose,
        # and a pile of faults on one call is not a situation NFS produces.
        self.fs[which].faults = [f for f in self.fs[which].faults if f.times != 0]
        if not self.fs[which].faults:
            self.fs[which].inject(op, err, match, after=after)

    @rule()
    def mta_delivers(self) -> None:
        msgid, data = self._new_message()
        deliver(self.dir / "M", data)
        self.live.add(msgid)

    @rule(which=st.integers(0, 1), flags=FLAGS, keywords=KEYWORDS)
    def append(self, which: int, flags: set[str], keywords: set[str]) -> None:
        msgid, data = self._new_message()
        box = self.boxes[which]
        uid = box.append(data, flags, keywords)
        self.live.add(msgid)
        validity = box.uid_validity or 0
        if validity:
            key = (validity, uid)
            assert self.uid_names.setdefault(key, msgid) == msgid, f"UID {key} reused"

    @rule(which=st.integers(0, 1))
    def sync(self, which: int) -> None:
        box = self.boxes[which]
        before = box.next_uid
        result = box.sync()
        assert result.uid_validity_changed or result.next_uid >= before
        self._record(which)

    @precondition(lambda self: any(b.messages() for b in self.boxes))
    @rule(which=st.integers(0, 1), pick=st.integers(0, 10_000), flags=FLAGS,
          keywords=KEYWORDS, mode=st.sampled_from(list(StoreMode)))
    def store(self, which: int, pick: int, flags: set[str], keywords: set[str],
              mode: StoreMode) -> None:
        box = self.boxes[which]
        view = box.messages()
        if not view:
            return
        msg = view[pick % len(view)]
        try:
            stored = box.store(msg.uid, flags, keywords, mode)
        except MessageExpunged:
            return
        if mode is StoreMode.REPLACE:
            assert stored.flags == frozenset(flags) and stored.keywords == frozenset(keywords)

    @precondition(lambda self: any(b.messages() for b in self.boxes))
    @rule(which=st.integers(0, 1), pick=st.integers(0, 10_000))
    def expunge(self, which: int, pick: int) -> None:
        box = self.boxes[which]
        view = box.messages()
        if not view:
            return
        msg = view[pick % len(view)]
        try:
            found = MSGID.search(box.read(msg.uid))
        except MessageExpunged:
            return
        assert found
        box.expunge([msg.uid])
        self.live.discard(found.group(1).decode())

    @rule(which=st.integers(0, 1), op=FAULT_OPS, err=FAULT_ERRS, after=st.booleans())
    def nfs_hiccup(self, which: int, op: str, err: int, after: bool) -> None:
        # One ESTALE on the next such call (before the operation, or after it
        # succeeded, as a lost reply); the store must absorb it.
        self._inject(which, op, err, "", after=after and op in ("rename", "link"))

    @rule(which=st.integers(0, 1), where=st.sampled_from(["/cur/", "/new/"]))
    def lost_rename_race(self, which: int, where: str) -> None:
        # The next rename of a message file finds it gone (someone renamed it first).
        self._inject(which, "rename", errno.ENOENT, where)

    @rule(which=st.integers(0, 1))
    def lost_link_reply(self, which: int) -> None:
        # The next link succeeds but reports EEXIST (NFS retransmission).
        self._inject(which, "link", errno.EEXIST, "", after=True)

    @invariant()
    def views_agree_after_both_sync(self) -> None:
        # Pending faults fire here if no rule used them: syncs must absorb them too.
        for i in (0, 1):
            self.boxes[i].sync()
            self._record(i)
        a, b = self.boxes
        assert a.uid_validity == b.uid_validity
        assert [(m.uid, m.base, m.flags, m.keywords) for m in a.messages()] == [
            (m.uid, m.base, m.flags, m.keywords) for m in b.messages()]
        seen = {self.uid_names[(a.uid_validity, m.uid)] for m in a.messages()}
        assert seen == self.live, (sorted(seen ^ self.live))
        assert len(a.messages()) == len(seen)


TwoWriters.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_two_writers_model = TwoWriters.TestCase
